"""Usage and invoices: calendar months (UTC), the charging rule, invoice statuses. Pure.

The charging rule (docs/billing.md): a task is charged once, in the month consensus decides
it, `cost_sats(tier, labels collected)` at the tier it was submitted on. A task without
consensus is not charged: the customer got no answer and no worker was paid for it. A task
its customer cancelled, or whose deadline passed, is charged the label price for each label
collected before that (its workers are paid for them), and no task price.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tiers import Tier

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# The last year whose every month has an end (the next month's first second) a date can hold.
MAX_YEAR = 9998
DRAFT = "draft"  # the current month: still growing
ISSUED = "issued"  # a past month: final, nothing can be charged to it any more


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> float:
        """First second of the month, UTC, as a Unix time."""
        return float(calendar.timegm((self.year, self.month, 1, 0, 0, 0)))

    @property
    def end(self) -> float:
        """First second of the next month (exclusive bound)."""
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    @classmethod
    def of(cls, unix_time: float) -> Month:
        t = time.gmtime(unix_time)
        return cls(t.tm_year, t.tm_mon)


def parse_month(text: str, now: float) -> Month:
    """`YYYY-MM`, or the current UTC month for an empty string."""
    if not text:
        return Month.of(now)
    match = _MONTH.match(text)
    if match is None:
        raise ValidationError("month", "must be a month as YYYY-MM, e.g. 2026-04")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise ValidationError("month", "must have a month from 01 to 12")
    if year < 1970:
        raise ValidationError("month", "must be 1970-01 or later")
    if year > MAX_YEAR:
        raise ValidationError("month", f"must be {MAX_YEAR}-12 or earlier")
    return Month(year, month)


def months_between(first: Month, last: Month) -> list[Month]:
    """`first` to `last` inclusive, oldest first."""
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = month.next()
    return months


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """What the store counts for one task type in one month."""

    task_type: str
    tasks_submitted: int = 0  # created in the month
    tasks_charged: int = 0  # decided in the month with a consensus (verified or settled)
    tasks_failed: int = 0  # decided in the month without one (cancelled and expired included)
    labels_collected: int = 0  # on the charged tasks
    labels_ended: int = 0  # on the cancelled and expired tasks: charged at the label price only
    # The tier the charged tasks were submitted on; None: unknown (priced at the current one).
    tier: str | None = None


# What a store counts a task as, per month: `submitted` in the month of its creation; once
# decided, in the month of the decision, `charged` (verified or settled), `failed` (no
# consensus) or `ended` (cancelled or expired). The fields of UsageCounts each kind adds to.
USAGE_KINDS: dict[str, tuple[str, str | None]] = {
    "submitted": ("tasks_submitted", None),
    "charged": ("tasks_charged", "labels_collected"),
    "failed": ("tasks_failed", None),
    "ended": ("tasks_failed", "labels_ended"),
}


def usage_kind(status: str) -> str:
    """The kind a decided task in this status counts as (USAGE_KINDS)."""
    return "failed" if status == "failed" else "ended" if status in ("cancelled", "expired") else "charged"


def usage_counts(rows: Iterable[tuple[str, str | None, str, int, int]]) -> list[UsageCounts]:
    """A store's usage counters, (task type, tier, kind, tasks, labels), as UsageCounts lines.

    Submissions and failures are not priced: they go on the type's line without a tier; the
    others on a line per tier they were submitted on. Every backend's counters end here, so
    they answer alike."""
    lines: dict[tuple[str, str | None], dict[str, int]] = {}
    for task_type, tier, kind, tasks, labels in rows:
        if not tasks and not labels:
            continue
        tasks_field, labels_field = USAGE_KINDS[kind]
        priced = kind in ("charged", "ended")
        line = lines.setdefault((task_type, tier if priced else None), {})
        line[tasks_field] = line.get(tasks_field, 0) + tasks
        if labels_field is not None:
            line[labels_field] = line.get(labels_field, 0) + labels
    return [UsageCounts(task_type, tier=tier, **fields) for (task_type, tier), fields in lines.items()]


@dataclass(frozen=True, slots=True)
class UsageLine:
    task_type: str
    tasks_submitted: int
    tasks_charged: int
    tasks_failed: int
    labels_collected: int
    sats_charged: int


@dataclass(frozen=True, slots=True)
class Usage:
    month: Month
    tier: Tier
    by_type: list[UsageLine]
    total: UsageLine = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", _sum(self.by_type))


@dataclass(frozen=True, slots=True)
class Invoice:
    usage: Usage
    status: str

    @property
    def invoice_id(self) -> str:
        """Stable and per customer: one invoice per month."""
        return f"inv_{self.usage.month.year:04d}{self.usage.month.month:02d}"


def price(
    counts: list[UsageCounts],
    month: Month,
    tier: Tier,
    tier_named: Callable[[str], Tier] | None = None,
) -> Usage:
    """The month's usage, one line per task type seen, sorted by type. Charged tasks are priced
    at the tier they were submitted on (`tier_named`), or at `tier` (the customer's current
    one) when that is not known."""
    by_type: dict[str, list[UsageCounts]] = {}
    for c in counts:
        by_type.setdefault(c.task_type, []).append(c)
    lines = []
    for task_type in sorted(by_type):
        rows = by_type[task_type]
        sats = 0
        for c in rows:
            at = tier if c.tier is None or tier_named is None else tier_named(c.tier)
            # = Σ cost_sats(at, labels) over these charged tasks
            labels = c.labels_collected + c.labels_ended
            sats += c.tasks_charged * at.task_price_sats + labels * at.label_price_sats
        lines.append(
            UsageLine(
                task_type=task_type,
                tasks_submitted=sum(c.tasks_submitted for c in rows),
                tasks_charged=sum(c.tasks_charged for c in rows),
                tasks_failed=sum(c.tasks_failed for c in rows),
                labels_collected=sum(c.labels_collected + c.labels_ended for c in rows),
                sats_charged=sats,
            )
        )
    return Usage(month, tier, lines)


def invoice_status(month: Month, now: float) -> str:
    return DRAFT if month >= Month.of(now) else ISSUED


def _sum(lines: list[UsageLine]) -> UsageLine:
    return UsageLine(
        task_type="",
        tasks_submitted=sum(line.tasks_submitted for line in lines),
        tasks_charged=sum(line.tasks_charged for line in lines),
        tasks_failed=sum(line.tasks_failed for line in lines),
        labels_collected=sum(line.labels_collected for line in lines),
        sats_charged=sum(line.sats_charged for line in lines),
    )
