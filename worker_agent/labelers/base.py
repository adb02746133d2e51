"""What a labeler is to the agent: an answer (or a skip) for one assignment at a time.

The session runs one `label` call per held assignment, concurrently, and cancels a call when
the task is withdrawn (stream lost, lease gone, shutdown). `can_finish_quickly` decides the
drain: a labeler that answers in moments finishes what it holds; a person is not kept waiting
for, and their held tasks go back to the core with a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from asg_grpc.v1 import labeling_pb2


@dataclass(frozen=True)
class Answer:
    option: str
    # A crowd's answer (the challenge gateway): people behind it and their agreement.
    votes: int = 0
    agreement: float = 0.0


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Answer | Skip


class Labeler(Protocol):
    name: str
    can_finish_quickly: bool

    async def label(self, assignment: labeling_pb2.Assignment) -> Decision:
        """Decide one assignment; may raise LabelerExhausted when no more answers can come."""
        ...

    def done(self, task_id: str, outcome: str) -> None:
        """The core is finished with the task on this stream: `acked` (its label is durable) or
        the WorkError code (`withdrawn`, `lease_expired`, ...). For a labeler with a queue of
        its own (the challenge gateway); the others ignore it."""
        ...

    def paid(self, line: str) -> None:
        """A payment arrived (`line` says what, for a person); the agent has logged it already."""
        ...

    async def aclose(self) -> None:
        """Release what the labeler holds (HTTP clients, the terminal reader)."""
        ...
