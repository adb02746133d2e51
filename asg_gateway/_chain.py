"""A task's receipt checked end to end: the ledger's proof (``_receipts``) and the task's payouts.

``verify_task_receipt_document`` is offline. ``receipt_flow`` is the I/O part of the clients'
``verify_receipt``: fetch the receipt, then, unless the caller brings its own headers or chain
tracker, the one header it needs from ``GET /v1/chain/headers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import ReceiptInvalid
from ._flows import Flow, json_flow
from ._receipts import (
    Headers,
    VerifiedOutput,
    VerifiedReceipt,
    averify_receipt_document,
    verify_receipt_document,
)


@dataclass(frozen=True, slots=True)
class TaskPayout:
    """What the task paid one agreeing worker, in output ``vout`` of the payout."""

    worker_id: str
    vout: int
    sats: int


@dataclass(frozen=True, slots=True)
class VerifiedTaskReceipt:
    """A task's payout proven: ``txid`` is in block ``block_hash`` at ``block_height``, its
    ``outputs`` pay what they claim, and every payout of the task is carried by one of them."""

    task_id: str
    txid: str
    block_height: int
    block_hash: str
    outputs: tuple[VerifiedOutput, ...]
    payouts: tuple[TaskPayout, ...]
    total_cost_sats: int


def _int(item: Mapping[str, Any], name: str, where: str) -> int:
    value = item.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ReceiptInvalid(f"receipt field {where}{name} is missing or not an int")
    return value


def check_payouts(
    receipt: Mapping[str, Any], verified: VerifiedReceipt, task_id: str | None = None
) -> VerifiedTaskReceipt:
    """The task's part of a receipt whose proof is verified: it names the proven transaction,
    and each payout's output is among the proven ones and pays at least the sum of the payouts
    it carries. Raises ReceiptInvalid naming the first mismatch."""
    claimed_task = receipt.get("task_id")
    if not isinstance(claimed_task, str) or (task_id is not None and claimed_task != task_id):
        raise ReceiptInvalid(f"receipt is for task {claimed_task!r}, not {task_id!r}")
    if receipt.get("bsv_txid") != verified.txid:
        raise ReceiptInvalid(
            f"receipt's bsv_txid {receipt.get('bsv_txid')!r} is not the proven {verified.txid}"
        )
    total_cost = _int(receipt, "total_cost_sats", "")
    items = receipt.get("payouts")
    if not isinstance(items, list) or not items:
        raise ReceiptInvalid("receipt field payouts is missing or empty")
    proven = {o.vout: o.satoshis for o in verified.outputs}
    carried: dict[int, int] = {}
    payouts: list[TaskPayout] = []
    for position, item in enumerate(items):
        where = f"payouts[{position}]."
        if not isinstance(item, Mapping) or not isinstance(item.get("worker_id"), str):
            raise ReceiptInvalid(f"receipt field {where}worker_id is missing or not a str")
        vout, sats = _int(item, "vout", where), _int(item, "sats", where)
        if sats <= 0:
            raise ReceiptInvalid(f"{where}sats is {sats}, not a positive amount")
        if vout not in proven:
            raise ReceiptInvalid(f"{where}vout {vout} is not among the verified outputs")
        carried[vout] = carried.get(vout, 0) + sats
        if carried[vout] > proven[vout]:
            raise ReceiptInvalid(
                f"payouts on vout {vout} add up to {carried[vout]} sats, the output pays {proven[vout]}"
            )
        payouts.append(TaskPayout(item["worker_id"], vout, sats))
    return VerifiedTaskReceipt(
        claimed_task,
        verified.txid,
        verified.block_height,
        verified.block_hash,
        verified.outputs,
        tuple(payouts),
        total_cost,
    )


def verify_task_receipt_document(
    receipt: Mapping[str, Any], headers: Headers, task_id: str | None = None
) -> VerifiedTaskReceipt:
    """``verify_receipt_document`` and then ``check_payouts``: the body of
    ``GET /v1/tasks/{id}/receipt`` checked offline against trusted headers or a ChainTracker."""
    return check_payouts(receipt, verify_receipt_document(receipt, headers), task_id)


async def averify_task_receipt_document(
    receipt: Mapping[str, Any], headers: Headers, task_id: str | None = None
) -> VerifiedTaskReceipt:
    """The async twin of ``verify_task_receipt_document``."""
    return check_payouts(receipt, await averify_receipt_document(receipt, headers), task_id)


def receipt_flow(
    receipt_request: httpx.Request,
    headers_request: Callable[[int], httpx.Request] | None,
    *,
    max_retries: int,
) -> Flow[tuple[dict[str, Any], dict[int, str] | None]]:
    """The receipt, and with ``headers_request`` the header at its block's height from the
    headers endpoint (height → header hex; empty if the API has none there)."""
    receipt = yield from json_flow(receipt_request, max_retries=max_retries)
    if headers_request is None:
        return receipt, None
    block = receipt.get("block")
    height = block.get("height") if isinstance(block, Mapping) else None
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        raise ReceiptInvalid("receipt field block.height is missing or not an int")
    body = yield from json_flow(headers_request(height), max_retries=max_retries)
    headers: dict[int, str] = {}
    for item in body.get("headers") or []:
        if isinstance(item, Mapping) and item.get("height") == height and isinstance(item.get("header"), str):
            headers[height] = item["header"]
    return receipt, headers
