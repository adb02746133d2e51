"""The Console's figures: the task-list query's rules and what the counters add up to. Pure.

The store keeps per-customer counters (counts by status, per-day submissions, sums of
confidence and settlement time, ten confidence bins, consensus labels); this module turns
them into the overview and quality figures, so every backend answers the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import TaskStatus

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
# A page deeper than this is refused: it would skip more rows than any index seek is worth.
MAX_PAGE = 1_000_000
SORTS = ("created_at_desc", "created_at_asc")
DAYS = 30  # the overview's tasks-per-day window, today included
BINS = 10


@dataclass(frozen=True, slots=True)
class TaskQuery:
    page: int
    per_page: int
    status: TaskStatus | None
    newest_first: bool

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def task_query(page: int | None, per_page: int | None, status: str, sort: str) -> TaskQuery:
    """The list's parameters checked; unset ones take their defaults (docs/api.md, Dashboard)."""
    page = 1 if page is None else page
    if not 1 <= page <= MAX_PAGE:
        raise ValidationError("page", f"must be from 1 to {MAX_PAGE}")
    per_page = DEFAULT_PER_PAGE if per_page is None else per_page
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationError("per_page", f"must be from 1 to {MAX_PER_PAGE}")
    wanted: TaskStatus | None = None
    if status:
        try:
            wanted = TaskStatus(status)
        except ValueError:
            names = ", ".join(s.value for s in TaskStatus)
            raise ValidationError("status", f"must be empty or one of {names}") from None
    sort = sort or SORTS[0]
    if sort not in SORTS:
        raise ValidationError("sort", f"must be one of {', '.join(SORTS)}")
    return TaskQuery(page, per_page, wanted, sort == SORTS[0])


def page_count(total: int, per_page: int) -> int:
    """At least 1: an empty list is page 1 of 1."""
    return max(1, -(-total // per_page))


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    status: TaskStatus
    task_type: str
    consensus_label: str | None
    confidence: float | None
    bsv_txid: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class TaskRows:
    rows: list[TaskRow]
    total: int


@dataclass(slots=True)
class Counters:
    """One customer's counters as the store keeps them."""

    by_status: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)  # YYYY-MM-DD → tasks submitted
    decided: int = 0
    confidence_sum: float = 0.0
    settled: int = 0
    settlement_seconds_sum: float = 0.0
    perfect: int = 0
    bins: list[int] = field(default_factory=lambda: [0] * BINS)
    labels: dict[str, int] = field(default_factory=dict)


def day_of(unix_time: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_time))


def window_days(now: float, days: int = DAYS) -> list[str]:
    """The last `days` UTC days, oldest first, today last."""
    return [day_of(now - 86400 * back) for back in range(days - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class Overview:
    by_status: list[tuple[str, int]]
    total: int
    avg_confidence: float | None
    avg_settlement_seconds: float | None
    tasks_per_day: list[tuple[str, int]]


def overview(counters: Counters, now: float) -> Overview:
    by_status = [(s.value, counters.by_status.get(s.value, 0)) for s in TaskStatus]
    return Overview(
        by_status=by_status,
        total=sum(n for _, n in by_status),
        avg_confidence=counters.confidence_sum / counters.decided if counters.decided else None,
        avg_settlement_seconds=(
            counters.settlement_seconds_sum / counters.settled if counters.settled else None
        ),
        tasks_per_day=[(day, counters.per_day.get(day, 0)) for day in window_days(now)],
    )


@dataclass(frozen=True, slots=True)
class Quality:
    decided: int
    perfect_agreement: int
    perfect_agreement_rate: float | None
    confidence_histogram: list[int]
    label_distribution: list[tuple[str, int]]


def quality(counters: Counters) -> Quality:
    labels = sorted(
        ((label, n) for label, n in counters.labels.items() if n > 0), key=lambda x: (-x[1], x[0])
    )
    return Quality(
        decided=counters.decided,
        perfect_agreement=counters.perfect,
        perfect_agreement_rate=counters.perfect / counters.decided if counters.decided else None,
        confidence_histogram=list(counters.bins),
        label_distribution=labels,
    )
