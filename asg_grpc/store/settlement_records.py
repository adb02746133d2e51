"""Records the settlement parts of the store take and hand out (see Store in base.py)."""

from __future__ import annotations

from dataclasses import dataclass

from asg_grpc.domain.settlement import Payout


@dataclass(frozen=True, slots=True)
class WalletUtxo:
    txid: str
    vout: int
    satoshis: int


@dataclass(frozen=True, slots=True)
class SettlementIntent:
    """A signed payout transaction and everything it pays, recorded before it is broadcast."""

    settlement_id: str
    txid: str
    raw: bytes
    fee: int
    task_ids: list[str]
    cost_by_task: dict[str, int]
    payouts: list[tuple[Payout, int]]  # with the vout that pays it
    inputs: list[WalletUtxo]
    change: WalletUtxo | None  # the wallet's own output, spendable once the tx is accepted


@dataclass(frozen=True, slots=True)
class OpenSettlement:
    """Recorded but not known to be accepted: broadcast (again) the same bytes."""

    settlement_id: str
    txid: str
    raw: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class TaskSettlement:
    """How a task was paid, for its receipt."""

    task_id: str
    settlement_id: str
    txid: str
    state: str  # prepared | accepted
    total_cost_sats: int
    payouts: tuple[tuple[str, int, int], ...]  # (worker_id, vout, sats for this task)
