"""Paying for decided tasks: who gets what, what the customer is charged, and the fee.

Pure arithmetic over plain values: the settler (asg_grpc/settlement/settler.py) builds and
signs the transaction this plans, and the store records the plan before it is broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from asg_grpc.domain.tiers import Tier, cost_sats

# Serialized sizes of P2PKH parts, in bytes. An input is at most 149 bytes (a 73-byte DER
# signature with its sighash byte); planning with the maximum keeps the fee at or above policy
# whatever length the signature comes out.
P2PKH_INPUT_MAX = 32 + 4 + 1 + (1 + 73 + 1 + 33) + 4
P2PKH_OUTPUT = 8 + 1 + 25
TX_OVERHEAD = 4 + 4  # version, lock time (the two counts are added by `tx_size`)
MAX_MONEY = 21_000_000 * 100_000_000  # satoshis; no amount or sum of amounts may exceed it


@dataclass(frozen=True, slots=True)
class AgreeingLabel:
    worker_id: str
    address: str  # the worker's payout address (P2PKH)


@dataclass(frozen=True, slots=True)
class SettleableTask:
    """A task not yet in any payout, with the workers to pay: those whose label won, or for an
    `ended` task (cancelled or expired before consensus) every worker who labeled it."""

    task_id: str
    customer_id: str
    tier: str | None  # the tier it was submitted on (None: before tiers were recorded)
    worker_count: int  # labels collected, the agreeing ones and the others
    agreeing: tuple[AgreeingLabel, ...]
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Payout:
    """One agreeing worker's pay for one task."""

    task_id: str
    worker_id: str
    address: str
    sats: int


@dataclass(frozen=True, slots=True)
class WorkerPayment:
    """What one worker was paid by one output of an accepted payout transaction.

    `sats` is this worker's share of output `vout` (workers sharing a payout address share an
    output). `task_ids` are the tasks whose labels it pays; `settled_at` (epoch seconds) is
    when the transaction was accepted.
    """

    worker_id: str
    txid: str
    vout: int
    sats: int
    task_ids: tuple[str, ...]
    settled_at: float


@dataclass(frozen=True, slots=True)
class PayoutPlan:
    """One transaction's worth of tasks: outputs by address (amounts summed), in vout order."""

    tasks: list[SettleableTask]
    payouts: list[Payout]
    cost_by_task: dict[str, int]
    outputs: list[tuple[str, int]]  # (address, sats), vout order
    vouts: dict[str, int]  # address → its vout

    @property
    def paid(self) -> int:
        return sum(sats for _, sats in self.outputs)


def plan_payouts(tasks: Iterable[SettleableTask], tier_of: Callable[[str | None], Tier]) -> PayoutPlan:
    """Each worker to pay gets its task's tier label price; the customer is charged the tier's
    cost for every label collected plus the task price (no task price for an ended task)."""
    chosen = list(tasks)
    payouts: list[Payout] = []
    costs: dict[str, int] = {}
    totals: dict[str, int] = {}
    for task in chosen:
        tier = tier_of(task.tier)
        costs[task.task_id] = (
            task.worker_count * tier.label_price_sats if task.ended else cost_sats(tier, task.worker_count)
        )
        for label in task.agreeing:
            payouts.append(Payout(task.task_id, label.worker_id, label.address, tier.label_price_sats))
            totals[label.address] = totals.get(label.address, 0) + tier.label_price_sats
    # Sorted: the same tasks always give the same outputs (and an address's vout is stable for
    # receipts and payment messages).
    outputs = sorted(totals.items())
    vouts = {address: vout for vout, (address, _) in enumerate(outputs)}
    return PayoutPlan(chosen, payouts, costs, outputs, vouts)


def _varint_size(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def tx_size(inputs: int, outputs: int) -> int:
    """The most bytes a transaction of P2PKH inputs and outputs serializes to."""
    return (
        TX_OVERHEAD
        + _varint_size(inputs)
        + inputs * P2PKH_INPUT_MAX
        + _varint_size(outputs)
        + outputs * P2PKH_OUTPUT
    )


def fee_for(size: int, sats_per_kb: int) -> int:
    """The policy fee for `size` bytes, rounded up (as the local ledger checks it)."""
    return math.ceil(size * sats_per_kb / 1000)


@dataclass(frozen=True, slots=True)
class Funding:
    inputs: list[tuple[str, int, int]]  # (txid, vout, sats) chosen to spend
    fee: int
    change: int  # 0: no change output


def choose_inputs(
    utxos: list[tuple[str, int, int]], pay: int, outputs: int, sats_per_kb: int
) -> Funding | None:
    """Largest first until they cover `pay` plus the fee of the transaction they make (with a
    change output); None when the wallet cannot cover it. Change under one satoshi is dropped
    into the fee."""
    chosen: list[tuple[str, int, int]] = []
    total = 0
    for utxo in sorted(utxos, key=lambda u: -u[2]):
        chosen.append(utxo)
        total += utxo[2]
        fee = fee_for(tx_size(len(chosen), outputs + 1), sats_per_kb)
        if total >= pay + fee:
            change = total - pay - fee
            if change == 0:
                return Funding(chosen, fee, 0)
            return Funding(chosen, fee, change)
    return None
