"""One open task as the dispatcher sees it: its slots, who holds them, what was labeled.

Pure rules, no I/O: a task with target N is held by at most N - labels workers at once, each
distinct; a worker never gets a task it labeled, skipped or already holds; a label is accepted
only from the worker holding the task, before its lease runs out, with one of the offered
options; a worker whose lease ran out is not offered that task again. Every accepted label
is evaluated by the consensus rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from asg_grpc.domain import consensus
from asg_grpc.domain.tasks import TaskStatus


class Refusal(enum.Enum):
    """Why a label or skip was refused; the value is the wire code of WorkError."""

    NOT_HELD = "not_held"
    LEASE_EXPIRED = "lease_expired"
    INVALID_OPTION = "invalid_option"
    ALREADY_LABELED = "already_labeled"


REFUSAL_MESSAGES = {
    Refusal.NOT_HELD: "this worker does not hold the task",
    Refusal.LEASE_EXPIRED: "the lease on this task ran out; the slot went back to the pool",
    Refusal.INVALID_OPTION: "option is not one of the task's label_spec.options",
    Refusal.ALREADY_LABELED: "this worker already labeled the task",
}


class LabelRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(REFUSAL_MESSAGES[refusal])
        self.refusal = refusal


@dataclass(slots=True)
class OpenTask:
    seq: int
    task_id: str
    task_type: str
    data_url: str
    question: str
    options: tuple[str, ...]
    threshold: int
    target: int
    status: TaskStatus = TaskStatus.PENDING
    labels: dict[str, str] = field(default_factory=dict)  # worker_id → option
    claims: dict[str, float] = field(default_factory=dict)  # worker_id → lease deadline
    skipped: set[str] = field(default_factory=set)
    outcome: consensus.Outcome | None = None

    @property
    def free_slots(self) -> int:
        return self.target - len(self.labels) - len(self.claims)

    @property
    def closed(self) -> bool:
        return self.status.decided

    def offerable_to(self, worker_id: str) -> bool:
        return (
            not self.closed
            and self.free_slots > 0
            and worker_id not in self.claims
            and worker_id not in self.labels
            and worker_id not in self.skipped
        )

    def claim(self, worker_id: str, deadline: float) -> bool:
        """Give one slot to the worker. True when this is the task's first claim ever."""
        if not self.offerable_to(worker_id):
            raise ValueError(f"task {self.task_id} is not offerable to {worker_id}")
        self.claims[worker_id] = deadline
        first = self.status is TaskStatus.PENDING
        if first:
            self.status = TaskStatus.IN_PROGRESS
        return first

    def release(self, worker_id: str) -> bool:
        """Put the worker's slot back (stream closed, lease ran out). True if it held one."""
        return self.claims.pop(worker_id, None) is not None

    def expire(self, worker_id: str) -> bool:
        """The worker's lease ran out: the slot goes back, and not to that worker again (it
        had its chance; offering it again would loop). True if it held one."""
        if self.claims.pop(worker_id, None) is None:
            return False
        self.skipped.add(worker_id)
        return True

    def skip(self, worker_id: str) -> None:
        if worker_id not in self.claims:
            raise LabelRefused(Refusal.NOT_HELD)
        del self.claims[worker_id]
        self.skipped.add(worker_id)

    def label(self, worker_id: str, option: str, now: float) -> consensus.Outcome:
        """Accept one label and evaluate consensus; LabelRefused leaves the task unchanged
        (except that a label after the lease ran out also frees the slot)."""
        deadline = self.claims.get(worker_id)
        if deadline is None:
            refusal = Refusal.ALREADY_LABELED if worker_id in self.labels else Refusal.NOT_HELD
            raise LabelRefused(refusal)
        if now > deadline:
            self.expire(worker_id)
            raise LabelRefused(Refusal.LEASE_EXPIRED)
        if option not in self.options:
            raise LabelRefused(Refusal.INVALID_OPTION)
        del self.claims[worker_id]
        self.labels[worker_id] = option
        if len(self.labels) < self.target:
            return consensus.NeedMore(self.target)
        outcome = consensus.evaluate(self.labels.values(), self.threshold)
        if isinstance(outcome, consensus.NeedMore):
            self.target = outcome.target
        else:
            self.status = TaskStatus.VERIFIED if isinstance(outcome, consensus.Decided) else TaskStatus.FAILED
            self.outcome = outcome
        return outcome
