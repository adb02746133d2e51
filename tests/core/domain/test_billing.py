"""Months, the charging rule's arithmetic, invoice statuses, and the token bucket."""

from __future__ import annotations

import calendar

import pytest

from asg_grpc.domain.billing import (
    DRAFT,
    ISSUED,
    Month,
    UsageCounts,
    invoice_status,
    months_between,
    parse_month,
    price,
    usage_counts,
)
from asg_grpc.domain.errors import RateLimited, ValidationError
from asg_grpc.domain.ratelimit import RateLimiter
from asg_grpc.domain.tiers import RateLimit, cost_sats, default_tiers

APRIL_9 = calendar.timegm((2026, 4, 9, 12, 0, 0))


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-04", "abc", "2026-4", "2026-04-01", " 2026-04"])
def test_a_bad_month_is_refused_naming_month(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_month(text, APRIL_9)

    assert info.value.field == "month"


def test_no_month_means_the_current_utc_month() -> None:
    assert parse_month("", APRIL_9) == Month(2026, 4)
    assert parse_month("2025-12", APRIL_9) == Month(2025, 12)


def test_a_month_spans_its_utc_days_and_december_rolls_over() -> None:
    assert Month(2026, 4).start == calendar.timegm((2026, 4, 1, 0, 0, 0))
    assert Month(2026, 4).end == calendar.timegm((2026, 5, 1, 0, 0, 0))
    assert Month(2025, 12).next() == Month(2026, 1)
    assert str(Month(2026, 4)) == "2026-04"


def test_months_between_is_inclusive_and_oldest_first() -> None:
    assert months_between(Month(2025, 11), Month(2026, 2)) == [
        Month(2025, 11),
        Month(2025, 12),
        Month(2026, 1),
        Month(2026, 2),
    ]


def test_the_current_month_is_a_draft_and_past_months_are_issued() -> None:
    assert invoice_status(Month(2026, 4), APRIL_9) == DRAFT
    assert invoice_status(Month(2026, 3), APRIL_9) == ISSUED


def test_usage_charges_task_price_plus_labels_for_charged_tasks_only() -> None:
    tier = default_tiers()["sandbox"]
    counts = [
        UsageCounts("sentiment", tasks_submitted=1, tasks_charged=1, labels_collected=2),
        UsageCounts(
            "image_classification", tasks_submitted=3, tasks_charged=2, tasks_failed=1, labels_collected=6
        ),
    ]

    usage = price(counts, Month(2026, 4), tier)

    assert [line.task_type for line in usage.by_type] == ["image_classification", "sentiment"]
    assert usage.by_type[0].sats_charged == 2 * cost_sats(tier, 3) == 2000
    assert usage.by_type[1].sats_charged == cost_sats(tier, 2) == 700
    assert (usage.total.tasks_submitted, usage.total.tasks_charged, usage.total.tasks_failed) == (4, 3, 1)
    assert usage.total.sats_charged == 2700


def test_charged_tasks_are_priced_at_the_tier_they_were_submitted_on() -> None:
    tiers = default_tiers()
    counts = [
        UsageCounts("sentiment", tasks_submitted=2),
        UsageCounts("sentiment", tasks_charged=1, labels_collected=3, tier="sandbox"),
        UsageCounts("sentiment", tasks_charged=1, labels_collected=3, tier="pro"),
        UsageCounts("sentiment", tasks_charged=1, labels_collected=3),  # tier unknown: current
    ]

    usage = price(counts, Month(2026, 4), tiers["pro"], tiers.__getitem__)

    [line] = usage.by_type
    assert (line.tasks_submitted, line.tasks_charged, line.labels_collected) == (2, 3, 9)
    assert line.sats_charged == cost_sats(tiers["sandbox"], 3) + 2 * cost_sats(tiers["pro"], 3)


def test_a_key_gets_its_burst_then_waits_for_a_token() -> None:
    limiter, limit = RateLimiter(), RateLimit(per_second=2.0, burst=3)
    for _ in range(3):
        limiter.take("k", limit, 100.0)

    with pytest.raises(RateLimited) as info:
        limiter.take("k", limit, 100.0)

    assert info.value.retry_after == 1
    limiter.take("k", limit, 100.5)  # one token back after 1 / per_second


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    limiter, limit = RateLimiter(), RateLimit(per_second=0.25, burst=1)
    limiter.take("k", limit, 0.0)

    with pytest.raises(RateLimited) as info:
        limiter.take("k", limit, 1.0)

    assert info.value.retry_after == 3  # 0.25 tokens back; 0.75 more take 3 s


def test_keys_have_buckets_of_their_own() -> None:
    limiter, limit = RateLimiter(), RateLimit(per_second=1.0, burst=1)
    limiter.take("a", limit, 0.0)

    limiter.take("b", limit, 0.0)
    with pytest.raises(RateLimited):
        limiter.take("a", limit, 0.0)


def test_full_buckets_are_forgotten_when_there_are_too_many() -> None:
    limiter, limit = RateLimiter(max_buckets=2), RateLimit(per_second=1.0, burst=2)
    limiter.take("a", limit, 0.0)
    limiter.take("b", limit, 0.0)

    limiter.take("c", limit, 10.0)  # a and b have refilled by now

    assert len(limiter) == 1


def test_usage_counters_become_lines_with_failures_unpriced_and_empty_rows_left_out() -> None:
    lines = usage_counts(
        [
            ("sentiment", None, "submitted", 4, 0),
            ("sentiment", "pro", "charged", 2, 6),
            ("sentiment", "pro", "ended", 1, 1),
            ("sentiment", "pro", "failed", 1, 0),  # a backend may keep a tier: not priced, dropped
            ("sentiment", "sandbox", "charged", 0, 0),  # netted to nothing
        ]
    )

    assert sorted(lines, key=repr) == sorted(
        [
            UsageCounts("sentiment", tasks_submitted=4, tasks_failed=1),
            UsageCounts(
                "sentiment", tasks_charged=2, labels_collected=6, tasks_failed=1, labels_ended=1, tier="pro"
            ),
        ],
        key=repr,
    )
