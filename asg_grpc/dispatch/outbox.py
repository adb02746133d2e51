"""What the core has to tell one worker stream, coalesced into as few messages as possible."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from asg_grpc.domain.labeling import OpenTask, Refusal


@dataclass(slots=True)
class Outgoing:
    """One drain of the outbox: everything queued since the last one, by kind."""

    assignments: list[tuple[OpenTask, float]] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    errors: list[tuple[str, Refusal]] = field(default_factory=list)


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

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> Outgoing | None:
        """Wait for something to send; None once closed and empty."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            out, self._pending = self._pending, Outgoing()
            if out.assignments or out.acks or out.errors:
                return out
            if self.closed:
                return None
