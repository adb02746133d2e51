"""Multi-step calls written once, as generators the sync and async clients drive.

A flow yields steps and receives their outcomes (the pattern of httpx ``_auth.py``):

* an ``httpx.Request``: the driver sends it and sends back the ``httpx.Response``, or the
  ``httpx.RequestError`` it raised, as a value so the flow can decide to retry;
* a ``float``: the driver sleeps that many seconds and sends back ``None``.

What the flow returns is the call's result. All decisions live here, so the two drivers stay a
few lines each and the retry and polling schedules are tested without sockets or sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import Any, TypeAlias, TypeVar

import httpx

from ._errors import (
    APIConnectionError,
    ASGError,
    ConflictError,
    JobTimeoutError,
    NoReceiptError,
    PollTimeoutError,
    error_from_response,
)
from ._retry import parse_retry_after, retry_delay

T = TypeVar("T")
Step: TypeAlias = httpx.Request | float
Outcome: TypeAlias = httpx.Response | httpx.RequestError | None
Flow: TypeAlias = Generator[Step, Outcome, T]

POLL_GROWTH = 1.5
POLL_MAX_INTERVAL = 60.0
JOB_FINAL_STATUSES = frozenset({"completed", "failed"})
WAIT_UNTIL = ("verified", "settled")
Ready: TypeAlias = Callable[[httpx.Response, dict[str, Any]], bool]


def decided(response: httpx.Response, body: dict[str, Any]) -> bool:
    """A result is final once the API answers 200 rather than 202 (verified, settled, failed,
    cancelled or expired)."""
    return response.status_code == 200


def settled(response: httpx.Response, body: dict[str, Any]) -> bool:
    """Decided and either paid (``settlement`` set) or never going to be: a task that failed,
    or ended (cancelled, expired) before any label, pays nobody."""
    if not decided(response, body):
        return False
    if body.get("settlement") is not None:
        return True
    return body.get("status") == "failed" or not body.get("worker_count")


def request_flow(request: httpx.Request, *, max_retries: int) -> Flow[httpx.Response]:
    """Send ``request``, retrying transient failures; return a 2xx response or raise.

    Give ``max_retries > 0`` only for requests that are safe to repeat: the same request object,
    hence the same body and idempotency key, goes out on every attempt.
    """
    attempt = 0
    while True:
        outcome = yield request
        delay = retry_delay(outcome, attempt) if attempt < max_retries else None
        if delay is None:
            return _unwrap(request, outcome)
        yield delay
        attempt += 1


def json_flow(request: httpx.Request, *, max_retries: int) -> Flow[dict[str, Any]]:
    """``request_flow`` returning the decoded JSON object of the response."""
    response = yield from request_flow(request, max_retries=max_retries)
    return decode_json(response)


def empty_flow(request: httpx.Request, *, max_retries: int) -> Flow[None]:
    """``request_flow`` for an answer without a body (204): returns ``None`` once it succeeds."""
    yield from request_flow(request, max_retries=max_retries)
    return None


def poll_flow(
    request: httpx.Request,
    *,
    task_id: str,
    timeout: float,
    interval: float,
    max_retries: int,
    ready: Ready = decided,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[dict[str, Any]]:
    """Fetch a task's result until it is ``ready`` (by default: decided) and return it.

    Waits ``interval`` seconds (or the server's ``Retry-After``, when longer), then 1.5 times
    longer each round up to 60 s, but never past the deadline: the last fetch happens at
    ``timeout``, then ``PollTimeoutError`` naming the last status is raised.
    """
    deadline = clock() + timeout
    delay = float(interval)
    while True:
        response = yield from request_flow(request, max_retries=max_retries)
        body = decode_json(response)
        if ready(response, body):
            return body
        remaining = deadline - clock()
        if remaining <= 0:
            raise PollTimeoutError(task_id, body.get("status"), timeout)
        hint = parse_retry_after(response.headers.get("Retry-After")) or 0.0
        yield min(max(delay, hint), remaining)
        delay = min(delay * POLL_GROWTH, POLL_MAX_INTERVAL)


def receipt_wait_flow(
    result_request: httpx.Request,
    receipt_request: httpx.Request,
    *,
    task_id: str,
    timeout: float,
    interval: float,
    max_retries: int,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[dict[str, Any]]:
    """Wait until the task is settled, then until its payout is mined (the receipt answers 409
    until then), and return the receipt; one ``timeout`` covers both waits.

    A task that pays nobody has no receipt: ``NoReceiptError`` as soon as that is known."""
    deadline = clock() + timeout
    result = yield from poll_flow(
        result_request,
        task_id=task_id,
        timeout=timeout,
        interval=interval,
        max_retries=max_retries,
        ready=settled,
        clock=clock,
    )
    if result.get("settlement") is None:
        raise NoReceiptError(task_id, result.get("status"))
    delay = float(interval)
    while True:
        try:
            return (yield from json_flow(receipt_request, max_retries=max_retries))
        except ConflictError:  # settled, payout not in a block yet
            remaining = deadline - clock()
            if remaining <= 0:
                raise PollTimeoutError(task_id, "settled, payout not mined", timeout) from None
        yield min(delay, remaining)
        delay = min(delay * POLL_GROWTH, POLL_MAX_INTERVAL)


def job_wait_flow(
    request: httpx.Request,
    *,
    job_id: str,
    timeout: float | None,
    interval: float,
    max_retries: int,
    on_progress: Callable[[dict[str, Any]], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[dict[str, Any]]:
    """Fetch a job every ``interval`` seconds until it is completed or failed, and return it.

    Unlike ``poll_flow`` the interval stays fixed: a job reports progress on every fetch, and
    ``on_progress`` (called with each fetched job, the last one included) is there to show it.
    With a ``timeout`` the last fetch happens at the deadline, then ``JobTimeoutError`` is raised.
    """
    limit = math.inf if timeout is None else timeout
    deadline = clock() + limit
    while True:
        job = yield from json_flow(request, max_retries=max_retries)
        if on_progress is not None:
            on_progress(job)
        if job.get("status") in JOB_FINAL_STATUSES:
            return job
        remaining = deadline - clock()
        if remaining <= 0:
            raise JobTimeoutError(job_id, job.get("status"), limit, job)
        yield min(interval, remaining)


def decode_json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful response; a proxy's HTML page becomes an ``ASGError``."""
    try:
        body = response.json()
    except ValueError as exc:
        text = response.text[:200]
        raise ASGError(f"{response.status_code} response is not JSON: {text!r}") from exc
    if not isinstance(body, dict):
        raise ASGError(f"{response.status_code} response is not a JSON object: {body!r:.200}")
    return body


def _unwrap(request: httpx.Request, outcome: Outcome) -> httpx.Response:
    if isinstance(outcome, httpx.Response):
        if outcome.is_success:
            return outcome
        raise error_from_response(outcome)
    detail = str(outcome) or type(outcome).__name__
    raise APIConnectionError(f"{request.method} {request.url} failed: {detail}") from outcome
