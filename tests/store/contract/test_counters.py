"""The dashboard's counters on every backend: after every write path (submit, labeling,
decisions, cancel, expiry, a payout accepted) they equal a recount of the customer's tasks as
the API reads them, and the task list pages by them."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from asg_grpc.domain import consensus
from asg_grpc.domain.dashboard import Counters, TaskQuery, day_of
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_settlement import FUNDS, intent, verified_task
from tests.store.contract.test_tasks import spec

DECIDED = {TaskStatus.VERIFIED, TaskStatus.SETTLED, TaskStatus.FAILED}


def recount(store: Any, customer_id: str) -> Counters:
    """The counters as the customer's tasks (list_tasks, every page) say they should be."""
    c = Counters()
    tasks, cursor = [], None
    while True:
        page = store.list_tasks(customer_id, status=None, batch_id=None, limit=100, after_task_id=cursor)
        tasks += page.tasks
        if page.next_after is None:
            break
        cursor = page.next_after
    for task in tasks:
        c.by_status[task.status.value] = c.by_status.get(task.status.value, 0) + 1
        c.per_day[day_of(task.created_at)] = c.per_day.get(day_of(task.created_at), 0) + 1
        verdict = task.verdict
        if task.status in DECIDED and verdict is not None:
            c.decided += 1
            c.confidence_sum += verdict.confidence
            c.bins[min(9, max(0, int(verdict.confidence * 10 + 1e-9)))] += 1
            if verdict.worker_count and verdict.agreement_count == verdict.worker_count:
                c.perfect += 1
            if task.status is not TaskStatus.FAILED and verdict.label is not None:
                c.labels[verdict.label] = c.labels.get(verdict.label, 0) + 1
        if task.status is TaskStatus.SETTLED and task.settlement is not None:
            c.settled += 1
            c.settlement_seconds_sum += task.settlement.settled_at - task.created_at
    return c


def nonzero(c: Counters) -> Counters:
    """Counters without the zero buckets a backend may keep for statuses a task left."""
    c.by_status = {k: v for k, v in c.by_status.items() if v}
    c.per_day = {k: v for k, v in c.per_day.items() if v}
    c.labels = {k: v for k, v in c.labels.items() if v}
    c.confidence_sum = round(c.confidence_sum, 9)
    c.settlement_seconds_sum = round(c.settlement_seconds_sum, 6)
    return c


def test_every_write_path_keeps_the_counters(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    now = time.time()
    [submitted] = store.submit([Submission(customer_id, [spec(n) for n in range(6)], "bat_1")], now)
    deadline = replace(spec(9), expires_in_seconds=1)
    [[expiring]] = store.submit([Submission(customer_id, [deadline], None)], now)
    assert not isinstance(submitted, Exception) and not isinstance(expiring, Exception)
    ids = [s.task.task_id for s in submitted]
    seqs = {t.task_id: t.seq for t in store.open_tasks(after_seq=0, limit=100)}
    assert nonzero(store.dashboard_counters(customer_id, "0000-00-00")).by_status == {"pending": 7}

    def open_task(index: int, status: TaskStatus, outcome: consensus.Outcome | None) -> OpenTask:
        task = OpenTask(seqs[ids[index]], ids[index], "image_classification", "u", "Q?", ("yes", "no"), 3, 3)
        task.status, task.outcome = status, outcome
        return task

    labels = [(ids[i], f"w{w}", "yes", now) for i in (1, 2, 3) for w in range(3)]
    store.record_labeling(LabelingBatch(now, labels[:3], [], [open_task(0, TaskStatus.IN_PROGRESS, None)]))
    assert nonzero(store.dashboard_counters(customer_id, "0000-00-00")).by_status == {
        "pending": 6,
        "in_progress": 1,
    }
    store.record_labeling(
        LabelingBatch(
            now,
            labels,
            [],
            [
                open_task(1, TaskStatus.VERIFIED, consensus.Decided("yes", 3, 3)),
                open_task(2, TaskStatus.VERIFIED, consensus.Decided("no", 3, 2)),
                open_task(3, TaskStatus.FAILED, consensus.NoConsensus(6)),
                open_task(0, TaskStatus.PENDING, None),  # its lease lapsed
            ],
        )
    )
    store.cancel_task(customer_id, ids[4], now)
    assert store.expire_due(now + 5) == [expiring.task.task_id]
    got = nonzero(open_store().dashboard_counters(customer_id, "0000-00-00"))  # another core reads
    assert got == nonzero(recount(store, customer_id))
    assert got.by_status == {"pending": 2, "verified": 2, "failed": 1, "cancelled": 1, "expired": 1}
    assert (got.decided, got.perfect, got.labels) == (3, 1, {"yes": 1, "no": 1})
    assert got.per_day == {day_of(now): 7}
    assert store.dashboard_counters(customer_id, "9999-01-01").per_day == {}


def test_a_payout_accepted_counts_its_task_settled(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(store, customer_id, ["yes"] * 3)
    store.record_settlement(intent("stl_1", [task_id], workers, [FUNDS[0]]), time.time())
    store.settlement_accepted("stl_1", time.time())
    store.settlement_accepted("stl_1", time.time())  # a repeat counts nothing more
    got = nonzero(store.dashboard_counters(customer_id, "0000-00-00"))
    assert got == nonzero(recount(store, customer_id))
    assert (got.by_status, got.settled) == ({"settled": 1}, 1)


def test_a_payout_of_many_tasks_counts_each_settled_once(open_store: OpenStore) -> None:
    """Aerospike counts a payout's tasks in batches (per counter shard): the same sums."""
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    paid = [verified_task(store, customer_id, ["yes"] * 3) for _ in range(6)]
    task_ids = [task_id for task_id, _ in paid]
    store.record_settlement(intent("stl_many", task_ids, paid[0][1], [FUNDS[1]]), time.time())
    store.settlement_accepted("stl_many", time.time())
    open_store().settlement_accepted("stl_many", time.time())  # another core's repeat: nothing more
    got = nonzero(open_store().dashboard_counters(customer_id, "0000-00-00"))
    assert got == nonzero(recount(store, customer_id))
    assert (got.by_status, got.settled) == ({"settled": 6}, 6)


def test_the_task_list_pages_by_the_counters(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    other = register(store, email="bob@example.com", key="key-bob")
    store.submit([Submission(other, [spec(99)], None)], time.time())
    [made] = store.submit([Submission(customer_id, [spec(n) for n in range(5)], "bat_1")], time.time())
    assert not isinstance(made, Exception)
    ids = [s.task.task_id for s in made]
    store.cancel_task(customer_id, ids[2], time.time())
    newest = store.dashboard_tasks(customer_id, TaskQuery(1, 2, None, True))
    assert newest.total == 5 and [r.task_id for r in newest.rows] == [ids[4], ids[3]]
    last = store.dashboard_tasks(customer_id, TaskQuery(3, 2, None, True))
    assert [r.task_id for r in last.rows] == [ids[0]]
    oldest = store.dashboard_tasks(customer_id, TaskQuery(1, 2, None, False))
    assert [r.task_id for r in oldest.rows] == [ids[0], ids[1]]
    cancelled = store.dashboard_tasks(customer_id, TaskQuery(1, 10, TaskStatus.CANCELLED, True))
    assert cancelled.total == 1 and [(r.task_id, r.status) for r in cancelled.rows] == [
        (ids[2], TaskStatus.CANCELLED)
    ]
    assert store.dashboard_tasks(customer_id, TaskQuery(9, 10, None, True)).rows == []


def test_status_totals_sum_every_customers_counters(open_store: OpenStore) -> None:
    """What /metrics shows as asg_tasks{status}: all customers together, cancels included."""
    store = open_store()
    first, second = register(store), register(store, "grace@example.com", "key-2")
    now = time.time()
    [a] = store.submit([Submission(first, [spec(n) for n in range(3)], None)], now)
    [b] = store.submit([Submission(second, [spec(n) for n in range(2)], None)], now)
    assert not isinstance(a, Exception) and not isinstance(b, Exception)
    store.cancel_task(second, b[0].task.task_id, now)
    totals = {k: v for k, v in store.status_totals().items() if v}
    assert totals == {"pending": 4, "cancelled": 1}
