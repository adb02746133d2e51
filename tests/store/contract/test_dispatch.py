"""What every store does for the dispatcher: open tasks of all customers oldest first, paged by
sequence, with what was labeled and skipped; the dispatch lease taken, renewed and released by
compare-and-set, and two stores racing for it (one wins)."""

from __future__ import annotations

import threading
import time

import pytest

from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.aerospike import AerospikeStore, AerospikeUrl, leases
from asg_grpc.store.task_records import LabelingBatch
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_labels import deciding, open_task, submit


def test_open_tasks_page_oldest_first_across_customers(open_store: OpenStore) -> None:
    store = open_store()
    ada = register(store)
    bob = register(store, email="bob@example.com", key="key-bob")
    first = submit(store, ada, 2)
    second = submit(open_store(), bob, 2)
    third = submit(store, ada, 1)
    order = first + second + third
    store = open_store()
    page = store.open_tasks(after_seq=0, limit=3)
    assert [t.task_id for t in page] == order[:3]
    # Each with its owner: the dispatcher caps one worker's share of a customer's traffic.
    assert [t.customer_id for t in page] == [ada, ada, bob]
    assert all(t.status is TaskStatus.PENDING and t.target == t.threshold == 3 for t in page)
    assert [t.seq for t in page] == sorted(t.seq for t in page)
    rest = store.open_tasks(after_seq=page[-1].seq, limit=10)
    assert [t.task_id for t in rest] == order[3:]
    assert store.open_tasks(after_seq=rest[-1].seq, limit=10) == []
    # A decided task leaves the open tasks; an in-progress one comes with its labels and skips.
    store.record_labeling(deciding(open_task(store, order[0]), ["yes"] * 3, time.time()))
    started = open_task(store, order[1])
    started.status = TaskStatus.IN_PROGRESS
    now = time.time()
    store.record_labeling(
        LabelingBatch(
            now, [(order[1], "wkr_a", "no", now)], [(order[1], "wkr_b", "bad_image", now)], [started]
        )
    )
    loaded = open_store().open_tasks(after_seq=0, limit=10)
    assert [t.task_id for t in loaded] == order[1:]
    assert (loaded[0].status, loaded[0].labels, loaded[0].skipped) == (
        TaskStatus.IN_PROGRESS,
        {"wkr_a": "no"},
        {"wkr_b"},
    )


def test_the_dispatch_lease_changes_hands_only_by_compare_and_set(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    assert store.dispatch_lease() is None
    assert store.take_dispatch_lease("core-a", 100.0, None)
    assert not other.take_dispatch_lease("core-b", 101.0, None)  # not what it expected
    assert other.dispatch_lease() == ("core-a", 100.0)
    assert store.renew_dispatch_lease("core-a", 105.0)
    assert not other.renew_dispatch_lease("core-b", 105.0)
    # A takeover names the lease it saw: a stale view loses.
    assert not other.take_dispatch_lease("core-b", 130.0, ("core-a", 100.0))
    assert other.take_dispatch_lease("core-b", 130.0, ("core-a", 105.0))
    assert not store.renew_dispatch_lease("core-a", 131.0)
    store.release_dispatch_lease("core-a")  # not its lease any more: a no-op
    assert open_store().dispatch_lease() == ("core-b", 130.0)
    other.release_dispatch_lease("core-b")
    assert store.dispatch_lease() is None
    assert store.take_dispatch_lease("core-a", 140.0, None)


def race_for_the_lease(stores: list[object], at: float) -> list[str]:
    """Both stores try to take the lease they both saw; the owners that got it."""
    seen = stores[0].dispatch_lease()  # type: ignore[attr-defined]
    won: list[str] = []
    barrier = threading.Barrier(2)

    def take(index: int) -> None:
        barrier.wait()
        if stores[index].take_dispatch_lease(f"core-{index}", at, seen):  # type: ignore[attr-defined]
            won.append(f"core-{index}")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_two_stores_racing_for_the_dispatch_lease_one_wins(open_store: OpenStore) -> None:
    for round_ in range(3):
        stores = [open_store(), open_store()]
        won = race_for_the_lease(stores, float(round_))
        assert len(won) == 1
        assert stores[1].dispatch_lease() == (won[0], float(round_))


def test_open_tasks_wait_for_a_submission_still_being_written(fresh_aerospike_url: AerospikeUrl) -> None:
    """Aerospike only (SQLite commits a submission whole): a dispatcher that pages by sequence
    must not step over a number another core took and has not written yet."""
    store = AerospikeStore(fresh_aerospike_url)
    try:
        customer_id = register(store)
        [before] = submit(store, customer_id)
        slow = store._sequence.allocate(1, time.time())  # another core, between its two writes
        [after] = submit(store, customer_id)
        assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == [before]
        store._sequence.done(slow)
        assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == [before, after]
        # A crash's leftover stops holding dispatch back after IN_FLIGHT_SECONDS.
        store._sequence.allocate(1, time.time() - 60)
        [late] = submit(store, customer_id)
        assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == [before, after, late]
    finally:
        store.close()


def test_open_tasks_read_in_windows_keep_the_order_and_skip_decided_history(
    fresh_aerospike_url: AerospikeUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Aerospike only: open tasks are read by windows of sequence numbers (one query of every
    open task timed out under load); pages still come oldest first, whole, across windows and
    across a run of decided tasks."""
    monkeypatch.setattr(leases, "OPEN_WINDOW", 2)
    store = AerospikeStore(fresh_aerospike_url)
    try:
        customer_id = register(store)
        tasks = submit(store, customer_id, 12)
        for task_id in tasks[1:8]:  # a stretch of decided history between open tasks
            store.record_labeling(deciding(open_task(store, task_id), ["yes"] * 3, time.time()))
        open_ids = [tasks[0], *tasks[8:]]
        page = store.open_tasks(after_seq=0, limit=3)
        assert [t.task_id for t in page] == open_ids[:3]
        rest = store.open_tasks(after_seq=page[-1].seq, limit=10)
        assert [t.task_id for t in rest] == open_ids[3:]
        assert store.open_tasks(after_seq=rest[-1].seq, limit=10) == []
    finally:
        store.close()
