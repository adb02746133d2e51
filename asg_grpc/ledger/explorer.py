"""Reads of the chain for customers: a task's receipt, block headers, one transaction.

Store reads only (no Ledger object), so every core serves them, whether or not it runs the
settler and the miner. ChainService (services/chain.py) turns these records into messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from bsv import Transaction

from asg_grpc.domain.errors import NotFound, NotReady, ValidationError
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.ledger.errors import NotMinedYet
from asg_grpc.ledger.receipts import Receipt, build_receipt, p2pkh_hash
from asg_grpc.store.areas import Ledger, Settlement, Tasks
from asg_grpc.store.ledger_records import LedgerBlock
from asg_grpc.store.settlement_records import TaskSettlement

DEFAULT_HEADERS = 100
MAX_HEADERS = 2000  # 160 KB of headers: a day of blocks at the default interval in 9 calls
_TXID = re.compile(r"[0-9a-f]{64}")


class ExplorerStore(Ledger, Settlement, Tasks, Protocol):
    """The chain, and the customer's task with its payout (for a task's receipt)."""


@dataclass(frozen=True, slots=True)
class TaskReceipt:
    """The ledger's receipt for the outputs that paid a task, with what the task paid."""

    receipt: Receipt
    settlement: TaskSettlement


@dataclass(frozen=True, slots=True)
class TxOutputView:
    vout: int
    satoshis: int
    address: str | None  # None unless the script is P2PKH


@dataclass(frozen=True, slots=True)
class TxView:
    txid: str
    raw: bytes
    block_height: int | None
    block_hash: str | None
    fee: int
    outputs: tuple[TxOutputView, ...]


def task_receipt(
    store: ExplorerStore, customer_id: str, task_id: str, *, network: str = "local"
) -> TaskReceipt:
    """NotFound for an unknown task or another customer's; NotReady (retry later) while the
    task is not settled, or its payout is not in a block yet."""
    task = store.get_task(customer_id, task_id)
    if task is None:
        raise NotFound("task not found")
    settlement = store.task_settlement(customer_id, task_id)
    if task.status is not TaskStatus.SETTLED or settlement is None or settlement.state != "accepted":
        if task.status is TaskStatus.FAILED:
            raise NotFound("task failed consensus and paid no worker, so it has no receipt")
        raise NotReady(
            f"task is not settled yet (status {task.status.value}); its receipt follows settlement"
        )
    if not settlement.payouts:
        raise NotFound("task paid no worker, so it has no receipt")
    try:
        receipt = build_receipt(
            store, settlement.txid, sorted({vout for _, vout, _ in settlement.payouts}), network=network
        )
    except NotMinedYet:
        # FAILED_PRECONDITION with a message rather than UNAVAILABLE: the gateway hides the
        # details of a 503 (core unavailable), and the caller must learn to retry after a block.
        raise NotReady(
            f"task is settled, transaction {settlement.txid} is not mined yet; retry in a few seconds"
        ) from None
    except NotFound:
        raise NotReady(
            f"transaction {settlement.txid} is not on this core's ledger (network {network});"
            " receipts are served for the local ledger"
        ) from None
    return TaskReceipt(receipt, settlement)


def headers(
    store: ExplorerStore, from_height: int, count: int | None
) -> tuple[list[LedgerBlock], int | None]:
    """Up to `count` consecutive blocks from `from_height`, and the tip's height (None: no block)."""
    if from_height < 0:
        raise ValidationError("from_height", "must be 0 or more")
    if count is None:
        count = DEFAULT_HEADERS
    if not 1 <= count <= MAX_HEADERS:
        raise ValidationError("count", f"must be from 1 to {MAX_HEADERS}")
    tip = store.ledger_tip()
    if tip is None:
        return [], None
    found: list[LedgerBlock] = []
    # Point reads by the primary key: 2000 of them take a few milliseconds on SQLite.
    for height in range(from_height, min(from_height + count, tip.height + 1)):
        block = store.ledger_block(height)
        if block is None:  # pragma: no cover - blocks are appended without gaps
            break
        found.append(block)
    return found, tip.height


def transaction(store: ExplorerStore, txid: str) -> TxView:
    """A transaction the ledger accepted, its block (if mined) and its outputs."""
    txid = txid.lower()
    if not _TXID.fullmatch(txid):
        raise ValidationError("txid", "must be 64 hex characters")
    record = store.ledger_transaction(txid)
    if record is None:
        raise NotFound("transaction not found")
    tx = Transaction.from_hex(record.raw)
    assert tx is not None  # the store holds only transactions that parsed
    outputs = []
    for vout, output in enumerate(tx.outputs):
        key_hash = p2pkh_hash(output.locking_script.serialize())
        address = None if key_hash is None else p2pkh_address(key_hash, "main")
        outputs.append(TxOutputView(vout, output.satoshis, address))
    block_hash = None
    if record.block_height is not None:
        block = store.ledger_block(record.block_height)
        block_hash = None if block is None else block.block_hash
    return TxView(record.txid, record.raw, record.block_height, block_hash, record.fee, tuple(outputs))
