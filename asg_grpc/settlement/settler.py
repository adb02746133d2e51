"""The settler: pays the agreeing workers of verified tasks, many tasks per transaction.

One loop on the core's event loop (in the core that dispatches):

1. a transaction recorded but not known to be accepted (after a crash, or a network that did
   not answer) is broadcast again — the same bytes, so the same txid: never a second payment;
2. otherwise verified tasks are gathered, up to `batch_size` or until the oldest waited
   `window` seconds, and planned (domain/settlement.py): one P2PKH output per worker address,
   amounts summed, plus change to the platform wallet;
3. the transaction is signed and recorded with everything it pays and spends, in one store
   transaction, *before* it is broadcast;
4. the broadcaster's verdict is recorded: accepted → the tasks are settled (their task.settled
   events in the same transaction) and each worker is told what it got; rejected → the tasks
   wait for the next payout and the inputs are freed; retry → sent again later.

One payout is in flight at a time: its change pays the next one, and a network that is down
stops payouts rather than piling up transactions that spend each other.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput

from asg_grpc import metrics
from asg_grpc.background import stop_tasks
from asg_grpc.domain import ids
from asg_grpc.domain.errors import Conflict
from asg_grpc.domain.settlement import PayoutPlan, WorkerPayment, choose_inputs, plan_payouts
from asg_grpc.domain.tiers import Tier, tier_named
from asg_grpc.ledger.wallet import Wallet
from asg_grpc.settlement.broadcast import Broadcaster, Verdict
from asg_grpc.store.areas import Settlement
from asg_grpc.store.offload import offload_of
from asg_grpc.store.settlement_records import OpenSettlement, SettlementIntent, WalletUtxo

log = logging.getLogger("asg.settlement")

POLL_INTERVAL = 0.25  # seconds between looks for verified tasks when there were none
ERROR_BACKOFF = 1.0
MAX_RETRY_DELAY = 60.0
# After a rejection the same tasks are planned again; a rejection that repeats (a fee policy
# above ASG_FEE_PER_KB, say) must not spin.
REJECTED_DELAY = 5.0
MAX_INPUTS = 50  # wallet UTXOs considered per payout (largest first)


@dataclass(frozen=True)
class SettlerSettings:
    batch_size: int = 1000  # tasks per payout transaction, at most
    window: float = 1.0  # seconds a verified task may wait for its batch to fill
    fee_per_kb: int = 100  # satoshis per 1000 bytes, rounded up


@functools.lru_cache(maxsize=65536)
def _p2pkh(address: str) -> bytes:
    """A worker address's locking script; workers recur batch after batch, and the base58
    decoding is most of the cost of building a payout's outputs."""
    script: bytes = P2PKH().lock(address).serialize()
    return script


class Settler:
    def __init__(
        self,
        store: Settlement,
        wallet: Wallet,
        broadcaster: Broadcaster,
        settings: SettlerSettings,
        tiers: dict[str, Tier],
        *,
        on_paid: Callable[[list[WorkerPayment]], None] | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._store = store
        # Each store step of a payout is one hop to the store's threads on Aerospike (the loop
        # serves gRPC while the node answers), inline on SQLite (asg_grpc/store/offload.py).
        self._offload = offload_of(store)
        self._wallet = wallet
        self._lock_script = wallet.locking_script
        self._broadcaster = broadcaster
        self._settings = settings
        self._tiers = tiers
        self._on_paid = on_paid or (lambda paid: None)
        self._poll = poll_interval
        self._waiting_since: float | None = None  # when a part-filled batch was first seen
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="settler")

    async def stop(self) -> None:
        """Stop between steps; a recorded transaction is broadcast again after restart."""
        await stop_tasks(self._task)
        self._task = None
        await self._broadcaster.close()

    async def _run(self) -> None:
        while True:
            try:
                delay = await self.step()
            except Exception:
                log.exception("settlement step failed; retrying")
                delay = ERROR_BACKOFF
            # With delay 0 (a backlog draining through the local ledger, which answers without
            # suspending) this still lets gRPC, dispatch and the lease heartbeat run in between.
            await asyncio.sleep(delay)

    async def step(self) -> float:
        """One payout (or one retry of an open one); how long to wait before the next step."""
        open_ones = await self._offload(self._store.open_settlements)
        if open_ones:
            return await self._broadcast(open_ones[0])
        tasks = await self._offload(partial(self._store.settleable_tasks, self._settings.batch_size))
        if not tasks:
            self._waiting_since = None
            return self._poll
        now = time.monotonic()
        if len(tasks) < self._settings.batch_size:
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self._settings.window:
                return self._waiting_since + self._settings.window - now
        self._waiting_since = None
        plan = plan_payouts(tasks, lambda name: tier_named(self._tiers, name))
        intent = self._sign(plan, await self._offload(partial(self._store.wallet_utxos, MAX_INPUTS)))
        if intent is None:
            return MAX_RETRY_DELAY
        try:
            await self._offload(partial(self._store.record_settlement, intent, time.time()))
        except Conflict as exc:  # a task or input changed meanwhile: plan again
            log.warning("payout not recorded; planning again", extra={"reason": exc.message})
            return 0.0
        return await self._broadcast(OpenSettlement(intent.settlement_id, intent.txid, intent.raw, 0))

    def _sign(self, plan: PayoutPlan, utxos: list[WalletUtxo]) -> SettlementIntent | None:
        funding = choose_inputs(
            [(u.txid, u.vout, u.satoshis) for u in utxos],
            plan.paid,
            len(plan.outputs),
            self._settings.fee_per_kb,
        )
        if funding is None:
            balance = sum(u.satoshis for u in utxos)
            log.error(
                "the platform wallet cannot pay for a payout; fund it",
                extra={"needed": plan.paid, "spendable": balance, "address": self._wallet.address},
            )
            return None
        unlock = self._wallet.unlocker()
        inputs = []
        for txid, vout, sats in funding.inputs:
            tx_input = TransactionInput(
                source_txid=txid, source_output_index=vout, unlocking_script_template=unlock
            )
            tx_input.satoshis = sats  # what the signature commits to (BIP-143 style sighash)
            tx_input.locking_script = self._lock_script
            inputs.append(tx_input)
        outputs = [TransactionOutput(Script(_p2pkh(address)), sats) for address, sats in plan.outputs]
        if funding.change:
            outputs.append(TransactionOutput(Script(self._lock_script.serialize()), funding.change))
        tx = Transaction(inputs, outputs)
        tx.sign()
        txid = tx.txid()
        change = None
        if funding.change:
            change = WalletUtxo(txid, len(plan.outputs), funding.change)
        return SettlementIntent(
            settlement_id=ids.new_id("stl"),
            txid=txid,
            raw=tx.serialize(),
            fee=funding.fee,
            task_ids=[t.task_id for t in plan.tasks],
            cost_by_task=plan.cost_by_task,
            payouts=[(p, plan.vouts[p.address]) for p in plan.payouts],
            inputs=[WalletUtxo(*i) for i in funding.inputs],
            change=change,
        )

    async def _broadcast(self, settlement: OpenSettlement) -> float:
        """Send and record the verdict; how long to wait before the next step."""
        outcome = await self._broadcaster.broadcast(settlement.raw, settlement.txid)
        now = time.time()
        if outcome.verdict is Verdict.ACCEPTED:
            accept = partial(self._store.settlement_accepted, settlement.settlement_id, now)
            paid = await self._offload(accept)
            log.info(
                "payout accepted",
                extra={
                    "txid": settlement.txid,
                    "settlement_id": settlement.settlement_id,
                    "outputs": len(paid),
                },
            )
            if paid:
                self._on_paid(paid)
            return 0.0
        if outcome.verdict is not Verdict.ACCEPTED:
            metrics.PAYOUT_FAILURES.labels(outcome.verdict.value).inc()
        if outcome.verdict is Verdict.REJECTED:
            log.error(
                "payout rejected; its tasks wait for the next one",
                extra={
                    "txid": settlement.txid,
                    "reason": outcome.detail,
                    "inputs_spent": outcome.inputs_spent,
                },
            )
            await self._offload(
                partial(
                    self._store.settlement_rejected,
                    settlement.settlement_id,
                    outcome.detail,
                    outcome.inputs_spent,
                    now,
                )
            )
            return REJECTED_DELAY
        log.warning(
            "payout not confirmed by the network; it will be sent again",
            extra={"txid": settlement.txid, "reason": outcome.detail, "attempt": settlement.attempts + 1},
        )
        attempted = partial(self._store.settlement_attempted, settlement.settlement_id, outcome.detail)
        await self._offload(attempted)
        return min(MAX_RETRY_DELAY, 2.0**settlement.attempts)
