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


def test_slots_go_to_distinct_workers_up_to_the_target() -> None:
    t = task(2)
    assert t.claim("w1", 100.0) is True  # first claim: pending → in_progress
    assert t.status is TaskStatus.IN_PROGRESS
    assert not t.offerable_to("w1")
    assert t.claim("w2", 100.0) is False
    assert t.free_slots == 0 and not t.offerable_to("w3")


def test_a_label_needs_a_live_claim_and_an_offered_option() -> None:
    t = task(2)
    t.claim("w1", 100.0)
    with pytest.raises(LabelRefused) as refused:
        t.label("w2", "pos", 1.0)
    assert refused.value.refusal is Refusal.NOT_HELD
    with pytest.raises(LabelRefused) as refused:
        t.label("w1", "maybe", 1.0)
    assert refused.value.refusal is Refusal.INVALID_OPTION
    assert "w1" in t.claims  # an invalid option keeps the claim
    t.label("w1", "pos", 1.0)
    with pytest.raises(LabelRefused) as refused:
        t.label("w1", "neg", 1.0)
    assert refused.value.refusal is Refusal.ALREADY_LABELED


def test_a_late_label_frees_the_slot_for_someone_else() -> None:
    t = task(2)
    t.claim("w1", 10.0)
    with pytest.raises(LabelRefused) as refused:
        t.label("w1", "pos", 11.0)
    assert refused.value.refusal is Refusal.LEASE_EXPIRED
    assert t.free_slots == 2
    assert not t.offerable_to("w1") and t.offerable_to("w2")


def test_a_tie_raises_the_target_then_a_majority_decides() -> None:
    t = task(2)
    t.claim("w1", 100.0)
    t.claim("w2", 100.0)
    t.label("w1", "pos", 1.0)
    assert t.label("w2", "neg", 1.0) == consensus.NeedMore(3)
    assert t.target == 3 and t.free_slots == 1 and not t.closed
    t.claim("w3", 100.0)
    assert t.label("w3", "neg", 1.0) == consensus.Decided("neg", 3, 2)
    assert t.status is TaskStatus.VERIFIED and t.closed


def test_skipping_returns_the_slot_and_is_remembered() -> None:
    t = task(2)
    t.claim("w1", 100.0)
    t.skip("w1")
    assert t.free_slots == 2 and not t.offerable_to("w1")
    with pytest.raises(LabelRefused):
        t.skip("w1")
