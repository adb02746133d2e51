from __future__ import annotations

import httpx
import pytest

from asg_gateway import (
    APIConnectionError,
    APIStatusError,
    ASGError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PollTimeoutError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
)
from asg_gateway._errors import error_class, error_from_response


def _subclasses(cls: type) -> set[type]:
    direct: set[type] = set(cls.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIStatusError),
    ],
)
def test_status_maps_to_its_error_class(status: int, cls: type[APIStatusError]) -> None:
    assert error_class(status) is cls


def test_every_status_error_class_is_reachable_from_a_status() -> None:
    reachable = {error_class(status) for status in range(300, 600)}
    # QuotaExhaustedError is a 403 told apart by its body (test below).
    assert _subclasses(APIStatusError) <= reachable | {QuotaExhaustedError}


def test_a_quota_403_raises_quota_exhausted_with_its_figures() -> None:
    body = {"error": "quota exhausted", "limit": 500, "used": 498, "requested": 3, "hint": "ask"}
    response = httpx.Response(403, json=body, headers={"X-Request-ID": "req_q"})
    error = error_from_response(response)
    assert isinstance(error, QuotaExhaustedError) and isinstance(error, PermissionDeniedError)
    assert (error.limit, error.used, error.requested, error.hint) == (500, 498, 3, "ask")
    assert str(error) == "403 quota exhausted (request_id=req_q): 3 labels requested, 498 of 500 used; ask"


def test_another_403_stays_permission_denied() -> None:
    error = error_from_response(httpx.Response(403, json={"error": "not allowed"}))
    assert type(error) is PermissionDeniedError


def test_every_error_is_an_asg_error() -> None:
    for cls in (APIConnectionError, APIStatusError, PollTimeoutError):
        assert issubclass(cls, ASGError)


def test_timeouts_are_builtin_timeout_errors_naming_the_last_status() -> None:
    """`except TimeoutError` catches a wait that ran out, as issue 16 asks."""
    error = PollTimeoutError("tsk_1", "in_progress", 2.5)
    assert isinstance(error, TimeoutError) and isinstance(error, ASGError)
    assert str(error) == "task tsk_1 still in_progress after 2.5 s"
    assert (error.task_id, error.last_status, error.timeout, error.message) == (
        "tsk_1",
        "in_progress",
        2.5,
        str(error),
    )
    job_error = JobTimeoutError("job_1", "labeling", 3, {"job_id": "job_1"})
    assert isinstance(job_error, TimeoutError) and str(job_error) == "job job_1 still labeling after 3 s"


def test_str_shows_status_message_and_request_id() -> None:
    error = NotFoundError(404, "task not found", "req_abc", {"error": "task not found"})
    assert str(error) == "404 task not found (request_id=req_abc)"


def test_str_leaves_out_a_missing_request_id() -> None:
    assert str(BadRequestError(400, "data_url is required", None, None)) == ("400 data_url is required")


def test_error_from_response_reads_the_error_body_and_request_id() -> None:
    response = httpx.Response(
        409, json={"error": "email already registered"}, headers={"X-Request-ID": "req_1"}
    )
    error = error_from_response(response)
    assert isinstance(error, ConflictError)
    assert (error.status, error.message, error.request_id) == (
        409,
        "email already registered",
        "req_1",
    )
    assert error.body == {"error": "email already registered"}


def test_error_from_response_falls_back_to_the_reason_for_a_non_json_body() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(error, ServerError)
    assert error.message == "Bad Gateway"
    assert error.body == "<html>bad gateway</html>"
    assert error.request_id is None


def test_rate_limit_error_carries_retry_after() -> None:
    response = httpx.Response(429, json={"error": "rate limited"}, headers={"Retry-After": "7"})
    error = error_from_response(response)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


def test_poll_timeout_error_names_the_task_and_last_status() -> None:
    error = PollTimeoutError("tsk_1", "in_progress", 300)
    assert str(error) == "task tsk_1 still in_progress after 300 s"
    assert (error.task_id, error.last_status, error.timeout) == ("tsk_1", "in_progress", 300)
