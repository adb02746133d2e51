"""What every store does with payouts: the wallet's outputs, verified tasks waiting with their
agreeing workers, an intent recorded whole or refused whole, accepted (tasks settled, inputs
spent, change spendable, payments answered once) or rejected (tasks waiting again), and two
stores recording payouts for one task at once (one wins)."""

from __future__ import annotations

import threading
import time

import pytest

from asg_grpc.domain.errors import Conflict
from asg_grpc.domain.settlement import Payout
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.domain.workers import WorkerRegistration
from asg_grpc.store.settlement_records import SettlementIntent, WalletUtxo
from asg_grpc.store.task_records import LabelingBatch
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_labels import deciding, open_task, submit

ADDRESS = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"


def verified_task(store: object, customer_id: str, options: list[str]) -> tuple[str, list[str]]:
    """A task decided by workers registered for it; its id and the workers' ids in order."""
    [task_id] = submit(store, customer_id)
    workers = [
        store.create_worker(  # type: ignore[attr-defined]
            WorkerRegistration(f"w{i}", ADDRESS, ("image_classification",)),
            token_hash=f"tok-{task_id}-{i}",
            now=time.time(),
        ).worker_id
        for i in range(len(options))
    ]
    batch = deciding(open_task(store, task_id), options, time.time())
    batch.labels = [(t, workers[int(w.split("_")[1])], o, at) for t, w, o, at in batch.labels]
    batch.tasks[0].labels = {workers[i]: o for i, o in enumerate(options)}
    store.record_labeling(batch)  # type: ignore[attr-defined]
    return task_id, workers


def intent(
    sid: str, task_ids: list[str], workers: list[str], inputs: list[WalletUtxo], n: int = 0
) -> SettlementIntent:
    txid = f"{n:064x}"
    payouts = [(Payout(task_ids[0], worker, ADDRESS, 100), 0) for worker in workers]
    return SettlementIntent(
        settlement_id=sid,
        txid=txid,
        raw=b"\x01\x00" + bytes([n]),
        fee=50,
        task_ids=task_ids,
        cost_by_task={t: 300 for t in task_ids},
        payouts=payouts,
        inputs=inputs,
        change=WalletUtxo(txid, 1, sum(u.satoshis for u in inputs) - 100 * len(workers) - 50),
    )


FUNDS = [WalletUtxo("a" * 64, 0, 5000), WalletUtxo("b" * 64, 0, 9000), WalletUtxo("c" * 64, 2, 7000)]


def test_the_wallet_keeps_known_outputs_and_spends_the_largest_first(open_store: OpenStore) -> None:
    store = open_store()
    assert store.add_wallet_utxos(FUNDS) == 3
    assert open_store().add_wallet_utxos([FUNDS[0], WalletUtxo("d" * 64, 0, 1)]) == 1
    assert store.wallet_utxos(2) == [FUNDS[1], FUNDS[2]]
    assert store.wallet_utxo_satoshis("a" * 64, 0) == 5000
    assert store.wallet_utxo_satoshis("a" * 64, 9) is None
    assert store.wallet_balance() == {"available": 21001}


def test_a_payout_recorded_then_accepted_settles_its_tasks_once(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(store, customer_id, ["yes", "no", "yes"])
    [waiting] = open_store().settleable_tasks(10)
    assert (waiting.task_id, waiting.customer_id, waiting.tier, waiting.worker_count, waiting.ended) == (
        task_id,
        customer_id,
        "sandbox",
        3,
        False,
    )
    assert [a.worker_id for a in waiting.agreeing] == [workers[0], workers[2]]
    assert waiting.agreeing[0].address == ADDRESS
    paid = [workers[0], workers[2]]
    store.record_settlement(intent("stl_1", [task_id], paid, [FUNDS[1]]), time.time())
    assert store.settleable_tasks(10) == []
    [open_one] = open_store().open_settlements()
    assert (open_one.settlement_id, open_one.raw, open_one.attempts) == ("stl_1", b"\x01\x00\x00", 0)
    store.settlement_attempted("stl_1", "timeout")
    receipt = store.task_settlement(customer_id, task_id)
    assert (receipt.state, receipt.total_cost_sats, receipt.payouts) == (
        "prepared",
        300,
        ((paid[0], 0, 100), (paid[1], 0, 100))
        if paid[0] < paid[1]
        else ((paid[1], 0, 100), (paid[0], 0, 100)),
    )
    assert store.wallet_balance() == {"available": 12000, "reserved": 9000, "pending": 8750}
    now = time.time()
    payments = open_store().settlement_accepted("stl_1", now)
    assert sorted((p.worker_id, p.vout, p.sats, p.task_ids) for p in payments) == sorted(
        (w, 0, 100, (task_id,)) for w in paid
    )
    assert store.settlement_accepted("stl_1", now + 1) == []
    assert store.open_settlements() == []
    task = store.get_task(customer_id, task_id)
    assert task.status is TaskStatus.SETTLED
    assert (task.settlement.bsv_txid, task.settlement.total_cost_sats, task.settlement.settled_at) == (
        f"{0:064x}",
        300,
        now,
    )
    assert store.task_settlement(customer_id, task_id).state == "accepted"
    assert store.wallet_balance() == {"available": 20750, "spent": 9000}


def test_a_payout_whose_task_or_input_was_taken_is_refused_whole(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    first, workers = verified_task(store, customer_id, ["yes"] * 3)
    second, _ = verified_task(store, customer_id, ["no"] * 3)
    store.record_settlement(intent("stl_1", [first], workers, [FUNDS[0]]), time.time())
    with pytest.raises(Conflict):  # its first task is in stl_1 already
        open_store().record_settlement(intent("stl_2", [second, first], workers, [FUNDS[1]], 2), time.time())
    with pytest.raises(Conflict):  # its input is reserved by stl_1
        store.record_settlement(intent("stl_3", [second], workers, [FUNDS[0]], 3), time.time())
    # Nothing of the refused ones stayed: the second task waits, the other inputs are free.
    assert [t.task_id for t in store.settleable_tasks(10)] == [second]
    assert [o.settlement_id for o in store.open_settlements()] == ["stl_1"]
    assert store.wallet_balance() == {"available": 16000, "reserved": 5000, "pending": 4650}
    assert store.task_settlement(customer_id, second) is None


def test_a_rejected_payout_puts_its_tasks_back_and_frees_or_loses_its_inputs(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(store, customer_id, ["yes"] * 3)
    store.record_settlement(intent("stl_1", [task_id], workers, [FUNDS[0]]), time.time())
    open_store().settlement_rejected("stl_1", "bad script", False, time.time())
    assert [t.task_id for t in store.settleable_tasks(10)] == [task_id]
    assert store.open_settlements() == [] and store.task_settlement(customer_id, task_id) is None
    assert store.wallet_balance() == {"available": 21000}
    store.record_settlement(intent("stl_2", [task_id], workers, [FUNDS[1]], 2), time.time())
    store.settlement_rejected("stl_2", "spent elsewhere", True, time.time())
    store.settlement_rejected("stl_2", "again", True, time.time())  # a no-op
    assert store.wallet_balance() == {"available": 12000, "lost": 9000}
    assert store.get_task(customer_id, task_id).status is TaskStatus.VERIFIED


def test_an_ended_task_pays_everyone_who_labeled_it(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [labeled, empty] = submit(store, customer_id, 2)
    task = open_task(store, labeled)
    task.status = TaskStatus.IN_PROGRESS
    now = time.time()
    worker = store.create_worker(
        WorkerRegistration("w", ADDRESS, ("image_classification",)), token_hash="tok", now=now
    ).worker_id
    store.record_labeling(LabelingBatch(now, [(labeled, worker, "no", now)], [], [task]))
    store.cancel_task(customer_id, labeled, now)
    store.cancel_task(customer_id, empty, now)
    [waiting] = open_store().settleable_tasks(10)
    assert (waiting.task_id, waiting.ended, waiting.worker_count) == (labeled, True, 1)
    assert [a.worker_id for a in waiting.agreeing] == [worker]


def test_two_stores_paying_one_task_at_once_pay_it_once(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.add_wallet_utxos(FUNDS)
    task_id, workers = verified_task(store, customer_id, ["yes"] * 3)
    stores = [open_store(), open_store()]
    intents = [intent(f"stl_{i}", [task_id], workers, [FUNDS[i]], i) for i in range(2)]
    refused: list[int] = []
    barrier = threading.Barrier(2)

    def record(index: int) -> None:
        barrier.wait()
        try:
            stores[index].record_settlement(intents[index], time.time())
        except Conflict:
            refused.append(index)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refused) == 1
    winner = 1 - refused[0]
    assert [o.settlement_id for o in store.open_settlements()] == [f"stl_{winner}"]
    assert store.wallet_utxos(10) == sorted(
        [u for i, u in enumerate(FUNDS) if i != winner], key=lambda u: -u.satoshis
    )
