"""Telling connected workers what they were paid: the value the settler hands the dispatcher.

Best-effort, not durable: the notice goes only to the worker's streams open at that moment and
is never retried or stored. The payment itself is on chain and in the receipt API; this is
only so an agent can show its labeler what they earned as it happens.
"""

from __future__ import annotations

import re

from asg_grpc.domain.settlement import WorkerPayment

# A payment lists at most this many task ids (`task_count` still says how many it pays), so a
# payout covering a worker's whole backlog stays a small message.
MAX_TASK_IDS = 1000

_TXID = re.compile(r"[0-9a-f]{64}")
_U32, _U64 = 2**32, 2**64
_YEAR_10000 = 253_402_300_800  # the first second a protobuf Timestamp cannot hold


def problem(payment: WorkerPayment) -> str | None:
    """Why the payment cannot go on the wire, or None. Checked before it is queued, so a bad
    value is logged and skipped instead of failing the settler or a worker's stream."""
    if not isinstance(payment.txid, str) or not _TXID.fullmatch(payment.txid):
        return "txid must be 64 lowercase hex digits"
    if not isinstance(payment.vout, int) or not 0 <= payment.vout < _U32:
        return "vout out of range"
    if not isinstance(payment.sats, int) or not 0 <= payment.sats < _U64:
        return "sats out of range"
    if not isinstance(payment.settled_at, int | float) or not 0 <= payment.settled_at < _YEAR_10000:
        return "settled_at out of range"  # NaN too
    if isinstance(payment.task_ids, str) or not all(isinstance(t, str) for t in payment.task_ids):
        return "task_ids must be strings"
    return None
