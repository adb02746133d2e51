"""One labeling flush over many tasks of two customers, on every backend: each task decided
once, the counters equal a recount, events written for exactly the tasks of the customer with a
webhook, and the same flush written again (a retry after a timeout) changes none of it. On
Aerospike the flush's writes and its counting go in batch calls (labels.py, counters.py)."""

from __future__ import annotations

import time

from asg_grpc.domain import consensus
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.task_records import LabelingBatch
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_counters import nonzero, recount
from tests.store.contract.test_customers import register
from tests.store.contract.test_labels import submit
from tests.store.contract.test_webhooks import hook

TASKS = 25  # per customer: several per counter shard of 16


def test_one_flush_deciding_many_tasks_counts_and_reports_each_once(open_store: OpenStore) -> None:
    store = open_store()
    quiet = register(store, email="quiet@example.com", key="key-quiet")
    heard = register(store)
    hook(store, heard)
    ids = {quiet: submit(store, quiet, TASKS), heard: submit(store, heard, TASKS)}
    tasks = {t.task_id: t for t in store.open_tasks(after_seq=0, limit=1000)}
    now = time.time()
    claimed = [tasks[i] for owner in ids for i in ids[owner]]
    for task in claimed:
        task.status = TaskStatus.IN_PROGRESS
    store.record_labeling(LabelingBatch(now, [], [], claimed))
    assert nonzero(store.dashboard_counters(heard, "0000-00-00")).by_status == {"in_progress": TASKS}
    labels, decided = [], []
    for n, task in enumerate(claimed):
        options = ["yes", "yes", "yes"] if n % TASKS % 2 else ["no", "no", "yes"]
        labels += [(task.task_id, f"wkr_{w}", option, now + w / 1000) for w, option in enumerate(options)]
        task.labels = {f"wkr_{w}": option for w, option in enumerate(options)}
        task.status = TaskStatus.VERIFIED
        task.outcome = consensus.Decided(options[0], 3, options.count(options[0]))
        decided.append(task)
    flush = LabelingBatch(now + 1, labels, [], decided)
    assert store.record_labeling(flush) == set()
    store.record_labeling(flush)  # written again: nothing changes
    for owner in ids:
        got = nonzero(open_store().dashboard_counters(owner, "0000-00-00"))  # another core reads
        assert got == nonzero(recount(store, owner))
        assert got.by_status == {"verified": TASKS}
        assert (got.decided, got.perfect, got.labels) == (TASKS, TASKS // 2, {"yes": TASKS // 2, "no": 13})
    events = open_store().pending_events(100)
    assert sorted((e.subject_id, e.event_type, e.customer_id) for e in events) == sorted(
        (task_id, "task.verified", heard) for task_id in ids[heard]
    )
    some = ids[quiet][0]
    assert [(r.worker_id, r.option) for r in store.task_labels(some)] == [
        ("wkr_0", "no"),
        ("wkr_1", "no"),
        ("wkr_2", "yes"),
    ]
