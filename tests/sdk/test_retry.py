from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from asg_gateway._retry import MAX_DELAY, backoff, parse_retry_after, retry_delay


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, MAX_DELAY)]
)
def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half(attempt: int, ceiling: float) -> None:
    assert backoff(attempt, rng=lambda: 0.0) == ceiling / 2
    assert backoff(attempt, rng=lambda: 1.0) == ceiling
    for _ in range(100):
        assert ceiling / 2 <= backoff(attempt) <= ceiling


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    delay = retry_delay(httpx.Response(status), attempt=0)
    assert delay is not None
    assert 0.25 <= delay <= 0.5


@pytest.mark.parametrize("status", [200, 202, 400, 401, 403, 404, 409, 413, 500, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    assert retry_delay(httpx.Response(status), attempt=0) is None


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("")],
)
def test_transport_errors_are_retried(error: httpx.TransportError) -> None:
    assert retry_delay(error, attempt=1) is not None


def test_errors_other_than_transport_are_not_retried() -> None:
    assert retry_delay(httpx.DecodingError("bad gzip"), attempt=0) is None


def test_retry_after_is_waited_when_longer_than_the_backoff() -> None:
    response = httpx.Response(429, headers={"Retry-After": "3"})
    assert retry_delay(response, attempt=0) == 3.0


def test_retry_after_beyond_a_minute_is_not_waited_out() -> None:
    response = httpx.Response(429, headers={"Retry-After": "120"})
    assert retry_delay(response, attempt=0) is None


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = parse_retry_after(soon)
    assert delay is not None
    assert 25 <= delay <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "1.5", "nan"])
def test_parse_retry_after_ignores_what_rfc_9110_does_not_allow(value: str | None) -> None:
    assert parse_retry_after(value) is None
