"""Where a payout transaction goes: the local ledger, or ARC for testnet and mainnet.

The settler records a transaction before it broadcasts it and broadcasts the same bytes again
after a crash, so every broadcaster must treat a transaction it already has as accepted.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Protocol

from asg_grpc.ledger.errors import InputUnavailable, TransactionRejected
from asg_grpc.ledger.ledger import Ledger


class Verdict(enum.Enum):
    ACCEPTED = "accepted"  # the network has the transaction (now or before)
    REJECTED = "rejected"  # it never will: the transaction must be replaced
    RETRY = "retry"  # unknown or temporary (5xx, timeout): send the same bytes again later


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    verdict: Verdict
    # Why, for logs and the settlement record (never credentials).
    detail: str = ""
    # REJECTED only: the inputs were spent elsewhere (a double spend), so they are gone too;
    # otherwise they are still the wallet's to spend.
    inputs_spent: bool = False


class Broadcaster(Protocol):
    async def broadcast(self, raw_tx: bytes, txid: str) -> BroadcastOutcome: ...

    async def close(self) -> None: ...


class LocalBroadcaster:
    """The local ledger in this core's store: accepted or rejected at once, never RETRY."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def broadcast(self, raw_tx: bytes, txid: str) -> BroadcastOutcome:
        try:
            self._ledger.submit(raw_tx, time.time())
        except InputUnavailable as exc:
            return BroadcastOutcome(Verdict.REJECTED, exc.reason, inputs_spent=True)
        except TransactionRejected as exc:
            return BroadcastOutcome(Verdict.REJECTED, exc.reason)
        return BroadcastOutcome(Verdict.ACCEPTED)

    async def close(self) -> None:
        return None
