"""What the tasks and dispatch areas of a store take and return (asg_grpc/store/areas.py)."""

from __future__ import annotations

from dataclasses import dataclass

from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import Task, TaskSpec


@dataclass(frozen=True, slots=True)
class Submitted:
    task: Task
    # True when the spec's idempotency key named an existing task, returned unchanged.
    replayed: bool


@dataclass(frozen=True, slots=True)
class Submission:
    """One SubmitTask (one spec, no batch) or one SubmitBatch."""

    customer_id: str
    specs: list[TaskSpec]
    batch_id: str | None


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    # Pass back as `after_task_id` for the next page; None on the last page.
    next_after: str | None


@dataclass(slots=True)
class LabelingBatch:
    """What the dispatcher changed since its last write, committed as one transaction."""

    now: float
    labels: list[tuple[str, str, str, float]]  # task_id, worker_id, option, created_at
    skips: list[tuple[str, str, str, float]]  # task_id, worker_id, reason, created_at
    # Tasks whose state (status, label target, verdict) changed, written as they are now.
    tasks: list[OpenTask]
