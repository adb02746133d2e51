"""The consensus rule (docs/labeling.md) as properties: for any labels and threshold, a strict
majority wins with confidence = agreement / labels, no task takes more than twice its threshold,
and an open task driven by any sequence of claims, labels, skips and lapses keeps its slots
straight and closes exactly as the rule says."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from asg_grpc.domain import consensus
from asg_grpc.domain.labeling import LabelRefused, OpenTask, Refusal
from asg_grpc.domain.tasks import TaskStatus

OPTIONS = ("cat", "dog", "bird")
thresholds = st.integers(min_value=2, max_value=10)
label_lists = st.lists(st.sampled_from(OPTIONS), max_size=20)


@given(label_lists, thresholds)
def test_evaluate_decides_only_on_a_strict_majority(labels: list[str], threshold: int) -> None:
    outcome = consensus.evaluate(labels, threshold)
    counts = Counter(labels)
    total = len(labels)
    top = counts.most_common(1)[0][1] if labels else 0
    if total < threshold:
        assert outcome == consensus.NeedMore(threshold)
    elif 2 * top > total:
        assert isinstance(outcome, consensus.Decided)
        assert outcome.worker_count == total
        assert outcome.agreement_count == counts[outcome.label] == top
        assert outcome.confidence == top / total
        assert 0.5 < outcome.confidence <= 1.0
    elif total >= 2 * threshold:
        assert outcome == consensus.NoConsensus(total)
    else:
        assert outcome == consensus.NeedMore(total + 1)
        assert outcome.target <= consensus.max_labels(threshold)


def test_the_documented_example() -> None:
    outcome = consensus.evaluate(["cat", "cat", "dog"], 3)
    assert isinstance(outcome, consensus.Decided)
    assert (outcome.label, outcome.confidence) == ("cat", 0.6666666666666666)


# One step on an open task: (action, worker index, option index).
steps = st.lists(
    st.tuples(
        st.sampled_from(["claim", "label", "bad_option", "skip", "release", "expire"]),
        st.integers(min_value=0, max_value=24),
        st.integers(min_value=0, max_value=len(OPTIONS) - 1),
    ),
    max_size=120,
)


def open_task(threshold: int) -> OpenTask:
    return OpenTask(
        seq=1,
        task_id="tsk_prop",
        task_type="image_classification",
        data_url="https://cdn.example.com/p.jpg",
        question="Animal?",
        options=OPTIONS,
        threshold=threshold,
        target=threshold,
    )


@given(thresholds, steps)
def test_any_sequence_of_work_keeps_the_task_consistent(
    threshold: int, ops: list[tuple[str, int, int]]
) -> None:
    task = open_task(threshold)
    now = 0.0
    for action, w, o in ops:
        now += 1.0
        worker = f"wkr_{w}"
        before = (dict(task.labels), task.status)
        try:
            if action == "claim":
                task.claim(worker, deadline=now + 60, now=now)
            elif action == "label":
                task.label(worker, OPTIONS[o])
            elif action == "bad_option":
                task.label(worker, "not-an-option")
            elif action == "skip":
                task.skip(worker)
            elif action == "release":
                task.release(worker)
            else:
                task.expire(worker, retry_at=now + 2)
        except LabelRefused as refused:
            assert (dict(task.labels), task.status) == before, "a refusal changes nothing"
            if action == "bad_option" and worker in task.claims:
                assert refused.refusal is Refusal.INVALID_OPTION
        except ValueError:
            assert action == "claim" and not task.offerable_to(worker, now)
            assert (dict(task.labels), task.status) == before
        if before[1].decided:
            assert (dict(task.labels), task.status) == before, "a decided task never changes"

        # Slots: distinct holders, never more than the target, never past twice the threshold.
        assert not task.claims.keys() & task.labels.keys()
        assert len(task.labels) + len(task.claims) <= task.target <= consensus.max_labels(threshold)
        if not task.closed:
            busy = bool(task.claims or task.labels)
            assert task.status is (TaskStatus.IN_PROGRESS if busy else TaskStatus.PENDING)

    if task.closed:
        outcome = consensus.evaluate(task.labels.values(), threshold)
        assert task.outcome == outcome
        assert len(task.labels) == task.target
        expected = TaskStatus.VERIFIED if isinstance(outcome, consensus.Decided) else TaskStatus.FAILED
        assert task.status is expected


@given(thresholds, st.lists(st.sampled_from(OPTIONS), min_size=20, max_size=20))
def test_distinct_workers_labeling_in_turn_close_the_task_within_twice_the_threshold(
    threshold: int, choices: list[str]
) -> None:
    task = open_task(threshold)
    for n, option in enumerate(choices):
        if task.closed:
            break
        task.claim(f"wkr_{n}", deadline=100.0, now=float(n))
        task.label(f"wkr_{n}", option)
    assert task.closed
    assert threshold <= len(task.labels) <= 2 * threshold
