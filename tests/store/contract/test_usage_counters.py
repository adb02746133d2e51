"""Billing's monthly usage from counters, on every backend: every write path moves them
(submissions of mixed types, labeling to a verdict or to none, a cancel with labels collected,
a deadline passing, a payout accepted), a range of months sums its months, another core reads
the same; and on SQLite the read touches no task row."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from asg_grpc.domain.billing import Month, UsageCounts
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_billing import APRIL, APRIL_2, MARCH, MARCH_31_LATE, customer, decide, spec
from tests.store.contract.test_labels import open_task
from tests.store.contract.test_settlement import FUNDS, intent, verified_task


def by_line(counts: list[UsageCounts]) -> list[UsageCounts]:
    return sorted(counts, key=repr)


def one_label(store: Any, task_id: str, now: float) -> None:
    """A first label of three: the task is in progress."""
    task: OpenTask = open_task(store, task_id)
    task.status, task.labels = TaskStatus.IN_PROGRESS, {"wkr_0": "a"}
    store.record_labeling(LabelingBatch(now, [(task_id, "wkr_0", "a", now)], [], [task]))


def test_every_write_path_moves_the_usage_counters(open_store: OpenStore) -> None:
    store = open_store()
    cid = customer(store, "a@example.com")
    now = time.time()
    specs = [
        spec("image_classification", 3, 1),
        spec("image_classification", 3, 2),
        spec("sentiment", 2, 3),
        replace(spec("sentiment", 2, 4), expires_in_seconds=1),
        spec("moderation", 2, 5),
    ]
    [outcome] = store.submit([Submission(cid, specs, batch_id=None)], now)
    assert isinstance(outcome, list)
    verified, cancelled, snt, expiring, failed = (s.task.task_id for s in outcome)
    decide(store, {verified: ["a", "a", "b"], failed: ["a", "b", "c", "d"]}, now)
    one_label(store, cancelled, now)
    store.cancel_task(cid, cancelled, now)
    store.cancel_task(cid, cancelled, now)  # twice is a no-op, counted once
    assert store.expire_due(now + 5) == [expiring]
    month = Month.of(now)

    got = open_store().usage_counts(cid, month.start, month.end)  # another core reads

    assert by_line(got) == by_line(
        [
            UsageCounts("image_classification", tasks_submitted=2),
            # charged and ended on one line per tier, as billing prices them
            UsageCounts(
                "image_classification",
                tasks_charged=1,
                labels_collected=3,
                tasks_failed=1,
                labels_ended=1,
                tier="sandbox",
            ),
            UsageCounts("sentiment", tasks_submitted=2),
            UsageCounts("sentiment", tasks_failed=1, labels_ended=0, tier="sandbox"),
            UsageCounts("moderation", tasks_submitted=1, tasks_failed=1),
        ]
    )
    assert snt  # still pending: submitted, nothing charged
    assert store.usage_counts(cid, month.end, month.next().end) == []


def test_a_payout_accepted_leaves_the_charge_as_it_was(open_store: OpenStore) -> None:
    store = open_store()
    cid = customer(store, "a@example.com")
    store.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(store, cid, ["yes", "yes", "no"])
    month = Month.of(time.time())
    before = by_line(store.usage_counts(cid, month.start, month.end))
    store.record_settlement(intent("stl_1", [task_id], workers[:2], [FUNDS[0]]), time.time())
    store.settlement_accepted("stl_1", time.time())
    store.settlement_accepted("stl_1", time.time())

    assert store.get_task(cid, task_id).status is TaskStatus.SETTLED
    assert by_line(store.usage_counts(cid, month.start, month.end)) == before
    assert [c.tasks_charged for c in before if c.tier] == [1]


def test_a_range_of_months_sums_its_months(open_store: OpenStore) -> None:
    store = open_store()
    cid = customer(store, "a@example.com")
    [march_task] = [
        s.task.task_id
        for s in store.submit([Submission(cid, [spec("sentiment", 2, 1)], None)], MARCH_31_LATE)[0]
    ]
    [april_task] = [
        s.task.task_id for s in store.submit([Submission(cid, [spec("sentiment", 2, 2)], None)], APRIL_2)[0]
    ]
    decide(store, {march_task: ["a", "a"], april_task: ["b", "b"]}, APRIL_2 + 60)

    both = store.usage_counts(cid, MARCH.start, APRIL.end)
    # A month counts when its first second is in the range: mid-March to mid-April is April.
    from_mid_march = store.usage_counts(cid, MARCH.start + 86400, APRIL.end - 86400)

    assert by_line(both) == by_line(
        [
            UsageCounts("sentiment", tasks_submitted=2),
            UsageCounts("sentiment", tasks_charged=2, labels_collected=4, tier="sandbox"),
        ]
    )
    assert by_line(from_mid_march) == by_line(store.usage_counts(cid, APRIL.start, APRIL.end))


def test_usage_reads_counters_not_task_rows(store: SQLiteStore) -> None:
    cid = customer(store, "a@example.com")
    store.submit([Submission(cid, [spec("sentiment", 2, 1)], None)], APRIL_2)
    tables: set[str] = set()

    def note(action: int, table: str | None, *_: object) -> int:
        if action == 20 and table:  # SQLITE_READ
            tables.add(table)
        return 0  # SQLITE_OK

    store._db.set_authorizer(note)
    try:
        got = store.usage_counts(cid, APRIL.start, APRIL.end)
    finally:
        store._db.set_authorizer(None)

    assert got == [UsageCounts("sentiment", tasks_submitted=1)]
    assert tables == {"dashboard_counts"}
