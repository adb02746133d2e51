"""When to retry a request and how long to wait first (the policy of stripe ``_http_client.py``).

Only transient failures are retried: no HTTP answer at all, 502/503/504, and 429. Callers pass
``max_retries=0`` for requests that are not safe to repeat.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})
INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
# A longer Retry-After is not waited out inside a call: the caller gets the RateLimitError.
MAX_RETRY_AFTER = 60.0


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt + 1``: exponential, capped, with jitter.

    The ceiling doubles from ``INITIAL_DELAY`` up to ``MAX_DELAY``; the wait is a random point in
    its upper half, so clients that failed together do not retry together.
    """
    ceiling = min(INITIAL_DELAY * 2.0**attempt, MAX_DELAY)
    return ceiling * (0.5 + rng() / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def retry_delay(outcome: httpx.Response | Exception | None, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``outcome``, or None if it must not be retried."""
    if isinstance(outcome, httpx.Response):
        if outcome.status_code not in RETRY_STATUSES:
            return None
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
        if retry_after is not None:
            return None if retry_after > MAX_RETRY_AFTER else max(retry_after, backoff(attempt))
        return backoff(attempt)
    if isinstance(outcome, httpx.TransportError):
        return backoff(attempt)
    return None
