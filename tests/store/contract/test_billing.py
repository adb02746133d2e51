"""The store's usage counts, on every backend: months bound by created_at for submissions and
by decided_at for charges, customers kept apart (test_usage_counters.py: from counters)."""

from __future__ import annotations

import calendar
from typing import Any

import pytest

from asg_grpc.domain import consensus
from asg_grpc.domain.billing import Month, UsageCounts
from asg_grpc.domain.customers import Registration
from asg_grpc.domain.errors import NotFound
from asg_grpc.domain.tasks import TaskSpec, TaskStatus
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.conftest import OpenStore

MARCH_31_LATE = calendar.timegm((2026, 3, 31, 23, 59, 0))
APRIL_2 = calendar.timegm((2026, 4, 2, 8, 0, 0))
APRIL, MARCH = Month(2026, 4), Month(2026, 3)


@pytest.fixture
def any_store(open_store: OpenStore) -> Any:
    return open_store()


def customer(store: Any, email: str) -> str:
    c = store.create_customer(
        Registration("T", email), tier="sandbox", label_quota=1000, key_hash=email, key_hint="h", now=0.0
    )
    return c.customer_id


def spec(task_type: str, threshold: int, n: int) -> TaskSpec:
    return TaskSpec(
        task_type=task_type,
        data_url=f"https://cdn.example.com/{n}.jpg",
        question="Q?",
        options=("a", "b", "c", "d"),
        consensus_threshold=threshold,
        callback_url=None,
        idempotency_key=None,
    )


def submit(store: Any, customer_id: str, specs: list[TaskSpec], now: float) -> list[str]:
    [outcome] = store.submit([Submission(customer_id, specs, batch_id=None)], now)
    assert isinstance(outcome, list)
    return [s.task.task_id for s in outcome]


def decide(store: Any, answers: dict[str, list[str]], now: float) -> None:
    """Record each task's labels and the decision consensus makes of them."""
    tasks = {t.task_id: t for t in store.open_tasks(after_seq=0, limit=1000)}
    changed, labels = [], []
    for task_id, options in answers.items():
        task = tasks[task_id]
        for i, option in enumerate(options):
            task.labels[f"wkr_{i}"] = option
            labels.append((task_id, f"wkr_{i}", option, now))
        outcome = consensus.evaluate(options, task.threshold)
        task.outcome = outcome
        if isinstance(outcome, consensus.Decided):
            task.status = TaskStatus.VERIFIED
        else:
            assert isinstance(outcome, consensus.NoConsensus)
            task.status = TaskStatus.FAILED
        changed.append(task)
    store.record_labeling(LabelingBatch(now=now, labels=labels, skips=[], tasks=changed))


def test_submissions_count_in_their_month_and_charges_in_the_month_of_the_decision(
    any_store: Any,
) -> None:
    store = any_store
    cid = customer(store, "a@example.com")
    img1, img2 = submit(
        store, cid, [spec("image_classification", 3, 1), spec("image_classification", 3, 2)], MARCH_31_LATE
    )
    [snt] = submit(store, cid, [spec("sentiment", 2, 3)], APRIL_2)
    [mod] = submit(store, cid, [spec("moderation", 2, 4)], APRIL_2)
    decide(store, {img1: ["a", "a", "b"]}, MARCH_31_LATE + 30)  # decided in March
    decide(store, {img2: ["a", "a", "a"], snt: ["b", "b"], mod: ["a", "b", "c", "d"]}, APRIL_2 + 60)

    march = store.usage_counts(cid, MARCH.start, MARCH.end)
    april = store.usage_counts(cid, APRIL.start, APRIL.end)

    # Submissions and failures on a row of their own; charges on a row per submission tier.
    assert sorted(march, key=repr) == sorted(
        [
            UsageCounts("image_classification", tasks_submitted=2),
            UsageCounts("image_classification", tasks_charged=1, labels_collected=3, tier="sandbox"),
        ],
        key=repr,
    )
    assert sorted(april, key=repr) == sorted(
        [
            UsageCounts("image_classification", tasks_charged=1, labels_collected=3, tier="sandbox"),
            UsageCounts("sentiment", tasks_submitted=1),
            UsageCounts("sentiment", tasks_charged=1, labels_collected=2, tier="sandbox"),
            UsageCounts("moderation", tasks_submitted=1, tasks_failed=1),
        ],
        key=repr,
    )
    assert store.first_task_at(cid) == MARCH_31_LATE


def test_charges_keep_the_tier_a_task_was_submitted_on(any_store: Any) -> None:
    store = any_store
    cid = customer(store, "a@example.com")
    [before] = submit(store, cid, [spec("sentiment", 2, 1)], APRIL_2)
    store.set_customer_tier(cid, "pro", 1000)
    [after] = submit(store, cid, [spec("sentiment", 2, 2)], APRIL_2 + 1)
    decide(store, {before: ["a", "a"], after: ["b", "b"]}, APRIL_2 + 60)

    charged = {c.tier: c.tasks_charged for c in store.usage_counts(cid, APRIL.start, APRIL.end) if c.tier}

    assert charged == {"sandbox": 1, "pro": 1}


def test_usage_is_the_customers_own(any_store: Any) -> None:
    store = any_store
    mine, theirs = customer(store, "a@example.com"), customer(store, "b@example.com")
    submit(store, theirs, [spec("sentiment", 2, 1)], APRIL_2)

    assert store.usage_counts(mine, APRIL.start, APRIL.end) == []
    assert store.first_task_at(mine) is None


def test_set_customer_tier_changes_tier_and_quota_and_keeps_reservations(any_store: Any) -> None:
    store = any_store
    cid = customer(store, "a@example.com")
    submit(store, cid, [spec("sentiment", 2, 1)], APRIL_2)

    changed = store.set_customer_tier(cid, "pro", 50_000)

    assert (changed.tier, changed.label_quota, changed.labels_reserved) == ("pro", 50_000, 2)
    owner = store.key_owner("a@example.com")
    assert owner is not None and owner.tier == "pro"
    with pytest.raises(NotFound):
        store.set_customer_tier("cust_unknown", "pro", 1)
