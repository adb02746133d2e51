"""The settler against a real SQLite store, the real local ledger and bsv-sdk transactions:
batching, what each worker and the customer get, and the crash windows between recording a
payout, the ledger accepting it, and the tasks being marked settled."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from bsv import P2PKH, Transaction

from asg_grpc.domain.settlement import WorkerPayment
from asg_grpc.domain.tasks import Task
from asg_grpc.domain.tiers import default_tiers
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.wallet import Wallet
from asg_grpc.settlement.broadcast import BroadcastOutcome, LocalBroadcaster, Verdict
from asg_grpc.settlement.settler import Settler, SettlerSettings
from asg_grpc.store.settlement_records import WalletUtxo
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.settlement.verified import make_customer, make_workers, verified_tasks

GENESIS = 100_000_000
pytestmark = pytest.mark.asyncio


@pytest.fixture
def ledger(store: SQLiteStore, wallet: Wallet) -> Ledger:
    ledger = Ledger(store, wallet)
    txid = ledger.ensure_genesis(GENESIS, time.time())
    store.add_wallet_utxos([WalletUtxo(txid, 0, GENESIS)])
    return ledger


class Scripted:
    """A broadcaster answering from a script, then (when the script runs out) the ledger."""

    def __init__(self, ledger: Ledger, *verdicts: BroadcastOutcome) -> None:
        self.local = LocalBroadcaster(ledger)
        self.verdicts = list(verdicts)
        self.sent: list[str] = []

    async def broadcast(self, raw_tx: bytes, txid: str) -> BroadcastOutcome:
        self.sent.append(txid)
        if self.verdicts:
            return self.verdicts.pop(0)
        return await self.local.broadcast(raw_tx, txid)

    async def close(self) -> None:
        return None


def settler(store: SQLiteStore, wallet: Wallet, broadcaster: object, paid: list[WorkerPayment] | None = None,
            batch: int = 1000) -> Settler:  # fmt: skip
    return Settler(
        store,
        wallet,
        broadcaster,  # type: ignore[arg-type]
        SettlerSettings(batch_size=batch, window=0.0),
        default_tiers(),
        on_paid=None if paid is None else paid.extend,
    )


def setup_tasks(store: SQLiteStore, count: int, workers: int = 5) -> list[str]:
    now = time.time()
    return verified_tasks(store, make_customer(store, 10**9, now), make_workers(store, workers, now), count)


async def test_one_transaction_pays_a_batch_with_one_output_per_worker_address(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    task_ids = setup_tasks(store, 250, workers=5)
    paid: list[WorkerPayment] = []
    s = settler(store, wallet, LocalBroadcaster(ledger), paid)
    assert await s.step() == 0.0
    assert store.settleable_tasks(10) == []
    [settlement] = {task(store, i).settlement for i in task_ids}
    assert settlement is not None and settlement.total_cost_sats == 1000
    tx = payout_tx(store, settlement.bsv_txid)
    # 5 worker addresses + change; 250 tasks × 2 agreeing labels × 300 sats paid in all.
    assert len(tx.outputs) == 6
    assert sum(o.satoshis for o in tx.outputs[:5]) == 250 * 2 * 300
    assert tx.outputs[5].locking_script.serialize() == wallet.locking_script.serialize()
    assert sum(p.sats for p in paid) == 250 * 2 * 300
    assert Counter(p.vout for p in paid).keys() == set(range(5))


def task(store: SQLiteStore, task_id: str) -> Task:
    [(customer_id,)] = store._db.execute("SELECT customer_id FROM tasks WHERE task_id = ?", (task_id,))
    found = store.get_task(customer_id, task_id)
    assert found is not None
    return found


def payout_tx(store: SQLiteStore, txid: str) -> Transaction:
    record = store.ledger_transaction(txid)
    assert record is not None, "the ledger holds the payout"
    return Transaction.from_hex(record.raw)


async def test_batches_are_capped_and_change_pays_the_next_one(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    setup_tasks(store, 120)
    s = settler(store, wallet, LocalBroadcaster(ledger), batch=50)
    for _ in range(3):
        await s.step()
    txids = [r[0] for r in store._db.execute("SELECT txid FROM settlements ORDER BY created_at")]
    assert len(txids) == 3
    parents = [payout_tx(store, t).inputs[0].source_txid for t in txids]
    assert parents[1:] == txids[:-1], "each payout spends the previous one's change"
    assert store.wallet_balance().keys() == {"available", "spent"}


async def test_a_payout_recorded_but_never_broadcast_is_sent_again_with_the_same_bytes(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    setup_tasks(store, 30)
    # The first broadcast "never happens": the process dies after recording (RETRY leaves it open).
    crashed = Scripted(ledger, BroadcastOutcome(Verdict.RETRY, "killed"))
    await settler(store, wallet, crashed).step()
    [open_one] = store.open_settlements()
    assert store.ledger_transaction(open_one.txid) is None
    restarted = Scripted(ledger)
    await settler(store, wallet, restarted).step()
    assert restarted.sent == [open_one.txid]
    assert store.open_settlements() == [] and store.settleable_tasks(10) == []
    [(count,)] = store._db.execute("SELECT count(*) FROM settlements")
    assert count == 1, "no second transaction for the same tasks"


async def test_a_payout_the_ledger_accepted_before_the_crash_is_accepted_again_not_paid_twice(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    setup_tasks(store, 30)
    await settler(store, wallet, Scripted(ledger, BroadcastOutcome(Verdict.RETRY, "killed"))).step()
    [open_one] = store.open_settlements()
    ledger.submit(open_one.raw, time.time())  # the network got it; the core died before noting it
    paid: list[WorkerPayment] = []
    await settler(store, wallet, LocalBroadcaster(ledger), paid).step()
    assert store.open_settlements() == [] and paid
    [(on_ledger,)] = store._db.execute("SELECT count(*) FROM ledger_transactions WHERE kind = 'tx'")
    assert on_ledger == 1


async def test_a_rejected_payout_frees_its_tasks_and_inputs_for_the_next(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    setup_tasks(store, 20)
    await settler(store, wallet, Scripted(ledger, BroadcastOutcome(Verdict.REJECTED, "fee too low"))).step()
    assert len(store.settleable_tasks(100)) == 20
    assert store.wallet_balance() == {"available": GENESIS}
    await settler(store, wallet, LocalBroadcaster(ledger)).step()
    assert store.settleable_tasks(100) == []
    [(state, last_error)] = store._db.execute("SELECT state, last_error FROM settlements")
    assert (state, last_error) == ("accepted", "rejected before: fee too low")


async def test_a_double_spend_verdict_drops_the_inputs_it_spent(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    setup_tasks(store, 5)
    spent = BroadcastOutcome(Verdict.REJECTED, "input 0 already spent", inputs_spent=True)
    await settler(store, wallet, Scripted(ledger, spent)).step()
    assert store.wallet_balance() == {"lost": GENESIS}
    assert await settler(store, wallet, LocalBroadcaster(ledger)).step() > 1, "waits to be funded"
    assert len(store.settleable_tasks(100)) == 5


async def test_workers_are_paid_at_the_price_of_the_tier_the_task_was_submitted_on(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    [task_id] = setup_tasks(store, 1, workers=3)
    [waiting] = store.settleable_tasks(1)
    store._db.execute("UPDATE tasks SET tier = 'pro'")  # pro: 250 a label, 50 a task
    await settler(store, wallet, LocalBroadcaster(ledger)).step()
    settlement = task(store, task_id).settlement
    assert settlement is not None and settlement.total_cost_sats == 50 + 3 * 250
    tx = payout_tx(store, settlement.bsv_txid)
    paid = {o.locking_script.serialize(): o.satoshis for o in tx.outputs[:-1]}
    assert paid == {P2PKH().lock(label.address).serialize(): 250 for label in waiting.agreeing}


async def test_a_task_from_before_tiers_were_recorded_is_paid_at_its_customers_tier(
    store: SQLiteStore, wallet: Wallet, ledger: Ledger
) -> None:
    """As billing charges it: the customer's tier, not the sandbox default."""
    [task_id] = setup_tasks(store, 1, workers=3)
    store._db.execute("UPDATE tasks SET tier = NULL")
    store._db.execute("UPDATE customers SET tier = 'pro'")
    await settler(store, wallet, LocalBroadcaster(ledger)).step()
    settlement = task(store, task_id).settlement
    assert settlement is not None and settlement.total_cost_sats == 50 + 3 * 250
