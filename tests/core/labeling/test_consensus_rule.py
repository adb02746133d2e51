"""The consensus rule and the open-task state machine as pure functions (asg_grpc.domain)."""

from __future__ import annotations

import pytest

from asg_grpc.domain import consensus
from asg_grpc.domain.labeling import LabelRefused, OpenTask, Refusal
from asg_grpc.domain.tasks import TaskStatus


@pytest.mark.parametrize(
    ("labels", "threshold", "expected"),
    [
        (["cat", "cat", "dog"], 3, consensus.Decided("cat", 3, 2)),
        (["cat", "cat", "cat"], 3, consensus.Decided("cat", 3, 3)),
        (["a", "a"], 2, consensus.Decided("a", 2, 2)),
        (["a", "b"], 2, consensus.NeedMore(3)),
        (["a", "b", "a"], 2, consensus.Decided("a", 3, 2)),
        (["a", "b", "c"], 2, consensus.NeedMore(4)),
        (["a", "b", "a", "b"], 2, consensus.NoConsensus(4)),
        (["a", "b", "c"], 3, consensus.NeedMore(4)),
        (["a", "b", "a", "b"], 3, consensus.NeedMore(5)),
        (["a", "b", "a", "b", "a"], 3, consensus.Decided("a", 5, 3)),
        (["a", "b", "c", "a", "b", "c"], 3, consensus.NoConsensus(6)),
        (["a"], 3, consensus.NeedMore(3)),
    ],
)
def test_strict_majority_rule(labels: list[str], threshold: int, expected: consensus.Outcome) -> None:
    assert consensus.evaluate(labels, threshold) == expected


def test_confidence_is_agreement_over_labels() -> None:
    assert consensus.Decided("cat", 3, 2).confidence == 0.6666666666666666
    assert consensus.Decided("cat", 10, 6).confidence == 0.6


@pytest.mark.parametrize("threshold", range(2, 11))
def test_every_threshold_stops_at_twice_itself(threshold: int) -> None:
    # Alternate two options forever: never a strict majority at an even count.
    labels = [("a", "b")[i % 2] for i in range(2 * threshold)]
    outcomes = [consensus.evaluate(labels[:n], threshold) for n in range(threshold, 2 * threshold + 1)]
    assert isinstance(outcomes[-1], consensus.NoConsensus | consensus.Decided)
    assert all(o.target <= 2 * threshold for o in outcomes if isinstance(o, consensus.NeedMore))


def task(threshold: int = 2) -> OpenTask:
    return OpenTask(
        seq=1,
        task_id="tsk_1",
        task_type="sentiment",
        data_url="https://example.com/a.txt",
        question="Mood?",
        options=("pos", "neg"),
        threshold=threshold,
        target=threshold,
    )


NOW = 1.0


def test_slots_go_to_distinct_workers_up_to_the_target() -> None:
    t = task(2)
    assert t.claim("w1", 100.0, NOW) is True  # first claim: pending → in_progress
    assert t.status is TaskStatus.IN_PROGRESS
    assert not t.offerable_to("w1", NOW)
    assert t.claim("w2", 100.0, NOW) is False
    assert t.free_slots == 0 and not t.offerable_to("w3", NOW)


def test_only_the_holder_labels_once_with_an_offered_option() -> None:
    t = task(2)
    t.claim("w1", 100.0, NOW)
    with pytest.raises(LabelRefused) as refused:
        t.label("w2", "pos")
    assert refused.value.refusal is Refusal.NOT_HELD
    with pytest.raises(LabelRefused) as refused:
        t.label("w1", "maybe")
    assert refused.value.refusal is Refusal.INVALID_OPTION
    assert "w1" in t.claims  # an invalid option keeps the claim
    t.label("w1", "pos")
    with pytest.raises(LabelRefused) as refused:
        t.label("w1", "neg")
    assert refused.value.refusal is Refusal.ALREADY_LABELED


def test_a_lapsed_lease_frees_the_slot_and_the_task_goes_back_to_pending() -> None:
    t = task(2)
    t.claim("w1", 10.0, NOW)
    assert t.expire("w1", retry_at=20.0) is True  # nobody holds it, nobody labeled it
    assert t.status is TaskStatus.PENDING and t.free_slots == 2
    assert t.offerable_to("w2", 11.0)
    # The worker that let it lapse gets it again, but only after the cool-down.
    assert not t.offerable_to("w1", 19.9) and t.offerable_to("w1", 20.0)
    assert t.claim("w1", 40.0, 20.0) is True
    assert t.status is TaskStatus.IN_PROGRESS


def test_a_task_with_a_label_stays_in_progress_when_a_lease_lapses() -> None:
    t = task(2)
    t.claim("w1", 10.0, NOW)
    t.claim("w2", 10.0, NOW)
    t.label("w1", "pos")
    assert t.expire("w2", retry_at=20.0) is False
    assert t.status is TaskStatus.IN_PROGRESS and t.free_slots == 1


def test_a_label_from_the_holder_counts_until_the_slot_is_handed_back() -> None:
    t = task(2)
    t.claim("w1", 10.0, NOW)
    t.label("w1", "pos")  # past its deadline of 10.0, but the slot was never handed back
    t.claim("w2", 10.0, NOW)
    t.expire("w2", retry_at=20.0)
    with pytest.raises(LabelRefused) as refused:
        t.label("w2", "pos")
    assert refused.value.refusal is Refusal.NOT_HELD


def test_a_closed_stream_puts_the_task_back_to_pending() -> None:
    t = task(2)
    t.claim("w1", 10.0, NOW)
    assert t.release("w1") is True
    assert t.status is TaskStatus.PENDING and t.offerable_to("w1", NOW)


def test_a_tie_raises_the_target_then_a_majority_decides() -> None:
    t = task(2)
    t.claim("w1", 100.0, NOW)
    t.claim("w2", 100.0, NOW)
    t.label("w1", "pos")
    assert t.label("w2", "neg") == consensus.NeedMore(3)
    assert t.target == 3 and t.free_slots == 1 and not t.closed
    t.claim("w3", 100.0, NOW)
    assert t.label("w3", "neg") == consensus.Decided("neg", 3, 2)
    assert t.status is TaskStatus.VERIFIED and t.closed


def test_skipping_returns_the_slot_and_is_remembered() -> None:
    t = task(2)
    t.claim("w1", 100.0, NOW)
    assert t.skip("w1") is True  # back to pending
    assert t.free_slots == 2 and not t.offerable_to("w1", NOW)
    with pytest.raises(LabelRefused):
        t.skip("w1")
