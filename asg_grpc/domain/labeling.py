"""One open task as the dispatcher sees it: its slots, who holds them, what was labeled.

Pure rules, no I/O: a task with target N is held by at most N - labels workers at once, each
distinct; a worker never gets a task it labeled, skipped or already holds; a label is accepted
only from the worker holding the task, with one of the offered options. A lease that runs
out only puts the slot back: the worker may be offered the task again after a cool-down (other
workers first), so a lapse never strands a task, whoever's fault it was (a paused core lapses
every lease at once). A task nobody holds and nobody has labeled is `pending` again: nothing
stays `in_progress` without a live lease or a label. Every accepted label is evaluated by the
consensus rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from asg_grpc.domain import consensus
from asg_grpc.domain.consensus_engine import ConsensusEngine, ConsensusSpec, Decision, GiveUp, Verdict
from asg_grpc.domain.tasks import DEFAULT_MAX_LABELS, DEFAULT_TARGET_CONFIDENCE, TaskStatus


class Refusal(enum.Enum):
    """Why a label or skip was refused; the value is the wire code of WorkError."""

    NOT_HELD = "not_held"
    LEASE_EXPIRED = "lease_expired"
    INVALID_OPTION = "invalid_option"
    ALREADY_LABELED = "already_labeled"
    WITHDRAWN = "withdrawn"


REFUSAL_MESSAGES = {
    Refusal.NOT_HELD: "this worker does not hold the task",
    Refusal.LEASE_EXPIRED: "the lease on this task ran out; the slot went back to the pool",
    Refusal.INVALID_OPTION: "option is not one of the task's label_spec.options",
    Refusal.ALREADY_LABELED: "this worker already labeled the task",
    Refusal.WITHDRAWN: "the task was closed (cancelled, expired, or no worker left); it takes no more labels",
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
    # worker_id → when a worker whose lease lapsed may be offered the task again.
    lapsed: dict[str, float] = field(default_factory=dict)
    outcome: consensus.Outcome | None = None
    # docs/quality.md: "majority" (the rule above) or "adaptive" (the engine decides).
    method: str = "majority"
    target_confidence: float = DEFAULT_TARGET_CONFIDENCE
    max_labels: int = DEFAULT_MAX_LABELS
    gold: str | None = None  # a gold task's answer; never part of what a worker is sent
    customer_id: str = ""  # whose task: for the cap on one worker's share of a customer's traffic
    labor: str = "any"  # "challenge": challenge gateways only (dispatch/labor.py)

    @property
    def adaptive(self) -> bool:
        return self.method == "adaptive"

    def consensus_spec(self) -> ConsensusSpec:
        """What the engine knows of the task; its family is its options (same question type)."""
        return ConsensusSpec(
            options=self.options,
            min_labels=self.threshold,
            max_labels=max(self.max_labels, self.threshold),
            target_confidence=self.target_confidence,
            gold=self.gold,
        )

    @property
    def free_slots(self) -> int:
        return self.target - len(self.labels) - len(self.claims)

    @property
    def closed(self) -> bool:
        return self.status.decided

    def offerable_to(self, worker_id: str, now: float) -> bool:
        return (
            not self.closed
            and self.free_slots > 0
            and worker_id not in self.claims
            and worker_id not in self.labels
            and worker_id not in self.skipped
            and self.lapsed.get(worker_id, 0.0) <= now
        )

    def claim(self, worker_id: str, deadline: float, now: float) -> bool:
        """Give one slot to the worker. True when the task went from pending to in_progress."""
        if not self.offerable_to(worker_id, now):
            raise ValueError(f"task {self.task_id} is not offerable to {worker_id}")
        self.claims[worker_id] = deadline
        self.lapsed.pop(worker_id, None)
        started = self.status is TaskStatus.PENDING
        if started:
            self.status = TaskStatus.IN_PROGRESS
        return started

    def release(self, worker_id: str) -> bool:
        """Put the worker's slot back (its stream closed). True when the status changed."""
        if self.claims.pop(worker_id, None) is None:
            return False
        return self._unclaimed()

    def expire(self, worker_id: str, retry_at: float) -> bool:
        """The worker's lease ran out: the slot goes back, and to that worker again no sooner
        than `retry_at` (so a worker that never answers does not get it back in a loop, and
        others come first). True when the status changed."""
        if self.claims.pop(worker_id, None) is None:
            return False
        self.lapsed[worker_id] = retry_at
        return self._unclaimed()

    def skip(self, worker_id: str) -> bool:
        """The worker declined: never offered to it again. True when the status changed."""
        if worker_id not in self.claims:
            raise LabelRefused(Refusal.NOT_HELD)
        del self.claims[worker_id]
        self.skipped.add(worker_id)
        return self._unclaimed()

    def _unclaimed(self) -> bool:
        """Back to pending once nobody holds the task and nobody labeled it."""
        if self.status is TaskStatus.IN_PROGRESS and not self.claims and not self.labels:
            self.status = TaskStatus.PENDING
            return True
        return False

    def label(self, worker_id: str, option: str, engine: ConsensusEngine | None = None) -> consensus.Outcome:
        """Accept one label and evaluate consensus; LabelRefused leaves the task unchanged.

        A label from the worker still holding the slot counts even past its deadline: the
        lease promises that nobody else gets the slot before then, and until the dispatcher
        has handed the slot back, nobody has (after a pause of the core, labels the workers
        sent in time are read late). With `engine` (an adaptive task), the engine decides."""
        if worker_id not in self.claims:
            refusal = Refusal.ALREADY_LABELED if worker_id in self.labels else Refusal.NOT_HELD
            raise LabelRefused(refusal)
        if option not in self.options:
            raise LabelRefused(Refusal.INVALID_OPTION)
        del self.claims[worker_id]
        self.labels[worker_id] = option
        if engine is not None:
            return self.judge(engine.add_label(self.task_id, worker_id, option))
        if len(self.labels) < self.target:
            return consensus.NeedMore(self.target)
        outcome = consensus.evaluate(self.labels.values(), self.threshold)
        if isinstance(outcome, consensus.NeedMore):
            self.target = outcome.target
        else:
            self.status = TaskStatus.VERIFIED if isinstance(outcome, consensus.Decided) else TaskStatus.FAILED
            self.outcome = outcome
        return outcome

    def judge(self, verdict: Verdict) -> consensus.Outcome:
        """Apply the engine's verdict: one more slot (never beyond `max_labels`; only once the
        labels reached the current target, so no slot is held when the task is decided), or
        the task is decided."""
        if isinstance(verdict, Decision):
            outcome: consensus.Outcome = consensus.Decided(
                verdict.label, verdict.worker_count, verdict.agreement_count, verdict.confidence
            )
        elif isinstance(verdict, GiveUp):
            outcome = consensus.NoConsensus(verdict.worker_count)
        else:
            if len(self.labels) >= self.target:
                self.target = min(len(self.labels) + 1, max(self.max_labels, self.threshold))
            return consensus.NeedMore(self.target)
        self.status = TaskStatus.VERIFIED if isinstance(outcome, consensus.Decided) else TaskStatus.FAILED
        self.outcome = outcome
        return outcome


def labels_beyond_reserved(task: OpenTask) -> int:
    """Labels a task decided with a consensus bought beyond the `consensus_threshold` its
    submission reserved (adaptive buying more, a majority tie): taken off the quota at decision."""
    outcome = task.outcome
    if not isinstance(outcome, consensus.Decided):
        return 0
    return max(0, outcome.worker_count - task.threshold)
