"""Aerospike only: a crash between two single-record writes is finished (or rolled back) by
replay. A crash is modelled by an error escaping between the steps; a new store object is the
restarted (or another) core."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from asg_grpc.domain.dashboard import day_of
from asg_grpc.domain.errors import Unavailable
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.aerospike import AerospikeStore, AerospikeUrl
from asg_grpc.store.aerospike.counters import Counts
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.test_customers import register
from tests.store.contract.test_labels import THRESHOLD, submit
from tests.store.contract.test_settlement import FUNDS, intent, verified_task
from tests.store.contract.test_tasks import spec


@pytest.fixture
def url(fresh_aerospike_url: AerospikeUrl) -> AerospikeUrl:
    return fresh_aerospike_url


@pytest.fixture
def stores(url: AerospikeUrl) -> Iterator[list[AerospikeStore]]:
    opened = [AerospikeStore(url), AerospikeStore(url)]
    yield opened
    for store in opened:
        store.close()


def crash(*_: Any, **__: Any) -> None:
    raise Unavailable("the core died here")


def crash_at(store: AerospikeStore, set_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store dies at its first settlement step on a record of `set_name` (one at a time
    or in a batch)."""
    for step in ("_sop", "_sop_many"):
        original = getattr(store, step)

        def cut(name: str, *args: Any, _original: Any = original) -> Any:
            if name == set_name:
                crash()
            return _original(name, *args)

        monkeypatch.setattr(store, step, cut)


def test_a_cancel_cut_off_before_the_quota_comes_back_is_finished_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    [task_id] = submit(first, customer_id)
    monkeypatch.setattr(first, "_give_back", crash)
    with pytest.raises(Unavailable):
        first.cancel_task(customer_id, task_id, time.time())
    # Step 1 happened: the task is cancelled, its quota still reserved.
    assert restarted.get_task(customer_id, task_id).status is TaskStatus.CANCELLED
    assert restarted.get_customer(customer_id).labels_reserved == THRESHOLD
    restarted.expire_due(time.time())  # the periodic pass finishes it
    assert restarted.get_customer(customer_id).labels_reserved == 0
    restarted.cancel_task(customer_id, task_id, time.time())  # and a repeat gives back nothing more
    restarted.expire_due(time.time())
    assert restarted.get_customer(customer_id).labels_reserved == 0


def test_a_payout_cut_off_while_taking_is_rolled_back_never_broadcast(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    first.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(first, customer_id, ["yes"] * 3)
    crash_at(first, first._wallet, monkeypatch)
    with pytest.raises(Unavailable):  # the task was taken, then the core died
        first.record_settlement(intent("stl_1", [task_id], workers, [FUNDS[0]]), time.time() - 60)
    assert restarted.settleable_tasks(10) == []
    assert restarted.open_settlements() == []  # never offered for broadcast: rolled back
    assert [t.task_id for t in restarted.settleable_tasks(10)] == [task_id]
    assert restarted.task_settlement(customer_id, task_id) is None
    assert restarted.wallet_balance() == {"available": 21000}


def test_an_acceptance_cut_off_halfway_is_finished_by_the_rebroadcast(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    first.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(first, customer_id, ["yes"] * 3)
    first.record_settlement(intent("stl_1", [task_id], workers, [FUNDS[0]]), time.time())
    crash_at(first, first._wallet, monkeypatch)
    with pytest.raises(Unavailable):
        first.settlement_accepted("stl_1", time.time())
    [again] = restarted.open_settlements()  # broadcast again: the network answers "accepted"
    payments = restarted.settlement_accepted(again.settlement_id, time.time())
    assert sorted(p.worker_id for p in payments) == sorted(workers)  # never answered before
    assert restarted.settlement_accepted("stl_1", time.time()) == []
    assert restarted.get_task(customer_id, task_id).status is TaskStatus.SETTLED
    assert restarted.wallet_balance() == {"available": 16000 + 4650, "spent": 5000}


def test_an_event_cut_off_before_it_was_emitted_is_emitted_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.store.contract.test_labels import deciding, open_task
    from tests.store.contract.test_webhooks import hook

    first, restarted = stores
    customer_id = register(first)
    webhook_id = hook(first, customer_id)
    [task_id] = submit(first, customer_id)
    monkeypatch.setattr(first._loutbox, "emit", crash)
    with pytest.raises(Unavailable):  # decided, its event marked, then the core died
        first.record_labeling(deciding(open_task(first, task_id), ["yes"] * 3, time.time()))
    [event] = restarted.pending_events(10)
    assert (event.event_type, event.subject_id) == ("task.verified", task_id)
    assert restarted.pending_events(10) == [event]  # emitted once, however often repaired
    # Fanning out again after a crash between the deliveries and the mark makes no second one.
    from asg_grpc.store.webhook_records import NewDelivery

    now = time.time()
    restarted.fan_out([], [NewDelivery("dlv_1", webhook_id, event.event_id, event.event_type, b"{}")], now)
    restarted.fan_out(
        [event.seq], [NewDelivery("dlv_2", webhook_id, event.event_id, event.event_type, b"{}")], now
    )
    assert [d.delivery_id for d in restarted.list_deliveries(customer_id, webhook_id, 10)] == ["dlv_1"]
    assert restarted.pending_events(10) == []


def _pending(store: AerospikeStore, customer_id: str) -> int:
    return store.dashboard_counters(customer_id, "0000-00-00").by_status.get("pending", 0)


def test_counters_cut_off_before_the_counter_record_are_finished_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    monkeypatch.setattr(Counts, "apply_born", lambda *_: None)  # cut off right after the write
    [task_id] = submit(first, customer_id)  # the task stands: counting is a follow-up
    assert _pending(restarted, customer_id) == 0  # step 1 done (born holding its difference)
    assert "cpend" in restarted._drecords.get(restarted._dtasks, task_id)[0]
    monkeypatch.undo()
    restarted.pending_events(10)  # the periodic pass repairs
    restarted.pending_events(10)
    assert _pending(restarted, customer_id) == 1
    assert restarted.get_task(customer_id, task_id).status is TaskStatus.PENDING


def test_counters_cut_off_after_the_counter_record_count_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    monkeypatch.setattr(Counts, "_clear_born", crash)  # step 3: clearing the difference
    [task_id] = submit(first, customer_id)
    assert _pending(restarted, customer_id) == 1  # step 2 happened
    assert "cpend" in restarted._drecords.get(restarted._dtasks, task_id)[0]  # step 3 did not
    monkeypatch.undo()
    restarted.pending_events(10)
    first.cancel_task(customer_id, task_id, time.time())
    counters = restarted.dashboard_counters(customer_id, "0000-00-00")
    assert (counters.by_status.get("pending", 0), counters.by_status["cancelled"]) == (0, 1)


def test_two_cores_counting_one_task_at_once_count_it_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = stores
    customer_id = register(first)
    monkeypatch.setattr(Counts, "apply_born", lambda *_: None)
    tasks = [submit(first, customer_id)[0] for _ in range(3)]  # written, not counted yet
    monkeypatch.undo()
    counts = [first._toutbox.counts, second._toutbox.counts]
    threads = [threading.Thread(target=counts[i % 2].apply, args=(tasks[i % 3],)) for i in range(12)] + [
        threading.Thread(target=counts[i].repair) for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _pending(first, customer_id) == 3
    assert first.dashboard_counters(customer_id, "0000-00-00").per_day == {
        day_of(first.get_task(customer_id, tasks[0]).created_at): 3
    }


def test_a_batch_partly_counted_by_a_repair_counts_each_task_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submission's tasks are counted in one increment, unless a repair (another core's, or
    a periodic pass) counted one of them first: then each finishes on its own, once."""
    first, second = stores
    customer_id = register(first)
    monkeypatch.setattr(Counts, "apply_born", lambda *_: None)
    [submitted] = first.submit([Submission(customer_id, [spec(n) for n in range(3)], "bat_1")], time.time())
    monkeypatch.undo()
    assert not isinstance(submitted, Exception)
    born = [(s.task.task_id, first._drecords.get(first._dtasks, s.task.task_id)[0]) for s in submitted]
    second._toutbox.counts.apply(born[0][0])  # the repair got to one of them first
    assert _pending(first, customer_id) == 1
    first._toutbox.counts.apply_born(customer_id, born)
    assert _pending(first, customer_id) == 3
    assert all("cpend" not in first._drecords.get(first._dtasks, task_id)[0] for task_id, _ in born)


def _claimed_flush(store: AerospikeStore, task_ids: list[str]) -> LabelingBatch:
    """The flush a dispatcher writes when workers take these tasks (pending → in progress)."""
    tasks = [t for t in store.open_tasks(after_seq=0, limit=100) if t.task_id in task_ids]
    for task in tasks:
        task.status = TaskStatus.IN_PROGRESS
    return LabelingBatch(time.time(), [], [], tasks)


def test_a_flush_cut_off_before_its_counting_is_counted_once_by_the_repair(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, restarted = stores
    customer_id = register(first)
    task_ids = submit(first, customer_id, 20)
    monkeypatch.setattr(Counts, "apply_changed", crash)  # the tasks' writes stand, uncounted
    with pytest.raises(Unavailable):
        first.record_labeling(_claimed_flush(first, task_ids))
    monkeypatch.undo()
    assert _pending(restarted, customer_id) == 20
    assert {first.get_task(customer_id, t).status for t in task_ids} == {TaskStatus.IN_PROGRESS}
    restarted.pending_events(10)  # the periodic pass repairs
    restarted.pending_events(10)
    counters = restarted.dashboard_counters(customer_id, "0000-00-00").by_status
    assert (counters.get("pending", 0), counters["in_progress"]) == (0, 20)


def test_a_flush_whose_task_a_repair_counted_first_counts_each_task_once(
    stores: list[AerospikeStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the tasks' first counting step and the shard increments, another core's repair
    counts one of them: that shard's increment is refused and its tasks finish one by one."""
    first, second = stores
    customer_id = register(first)
    task_ids = submit(first, customer_id, 20)
    increment = Counts._apply_shards

    def repair_first(counts: Counts, by_shard: dict[str, list[Any]], alone: list[str]) -> Any:
        second._toutbox.counts.apply(min(by_shard.values())[0][0])
        return increment(counts, by_shard, alone)

    monkeypatch.setattr(Counts, "_apply_shards", repair_first)
    first.record_labeling(_claimed_flush(first, task_ids))
    monkeypatch.undo()
    counters = second.dashboard_counters(customer_id, "0000-00-00").by_status
    assert (counters.get("pending", 0), counters["in_progress"]) == (0, 20)
    assert all("cpend" not in first._drecords.get(first._dtasks, t)[0] for t in task_ids)
    second.pending_events(10)  # a repair afterwards finds nothing left to count
    assert second.dashboard_counters(customer_id, "0000-00-00").by_status["in_progress"] == 20
