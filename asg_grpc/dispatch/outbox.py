"""What the core has to tell one worker stream, coalesced into as few messages as possible."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from asg_grpc.dispatch.payments import WorkerPayment
from asg_grpc.domain.labeling import OpenTask, Refusal

# Payment notices waiting on one stream beyond this are dropped (they are best-effort): a
# stream that does not read cannot make the core hold an unbounded queue for it.
MAX_PENDING_PAYMENTS = 10_000


@dataclass(frozen=True, slots=True)
class Notice:
    """Why a worker gets less work (WorkNotice): `banned` or `capped`, for a person, and the
    task family concerned (its options) when it is one family."""

    code: str
    message: str
    family: tuple[str, ...] = ()


@dataclass(slots=True)
class Outgoing:
    """One drain of the outbox: everything queued since the last one, by kind."""

    assignments: list[tuple[OpenTask, float]] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    errors: list[tuple[str, Refusal]] = field(default_factory=list)
    payments: list[WorkerPayment] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


class Outbox:
    def __init__(self) -> None:
        self._pending = Outgoing()
        self._ready = asyncio.Event()
        self.closed = False

    def assign(self, task: OpenTask, deadline: float) -> None:
        self._pending.assignments.append((task, deadline))
        self._ready.set()

    def ack(self, task_id: str) -> None:
        self._pending.acks.append(task_id)
        self._ready.set()

    def error(self, task_id: str, refusal: Refusal) -> None:
        self._pending.errors.append((task_id, refusal))
        self._ready.set()

    def notice(self, notice: Notice) -> None:
        self._pending.notices.append(notice)
        self._ready.set()

    def pay(self, payment: WorkerPayment) -> bool:
        """Queue a payment notice; False when the stream is closed or too far behind."""
        payments = self._pending.payments
        if self.closed or len(payments) >= MAX_PENDING_PAYMENTS:
            return False
        payments.append(payment)
        self._ready.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> Outgoing | None:
        """Wait for something to send; None once closed and empty."""
        while True:
            if not self.closed:  # once closed, the set that close() made may be consumed already
                await self._ready.wait()
            self._ready.clear()
            out, self._pending = self._pending, Outgoing()
            if out.assignments or out.acks or out.errors or out.payments or out.notices:
                return out
            if self.closed:
                return None
