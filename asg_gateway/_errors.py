"""Exceptions raised by the SDK.

Catch ``ASGError`` to handle every failure of a call; catch a subclass to react to one cause.

    ASGError                    root; also raised for misuse caught before any I/O (no API key)
    ├── APIConnectionError      no HTTP answer (DNS, refused connection, timeout), or a
    │                           job export's stream cut before its end
    ├── APIStatusError          the gateway answered an error; .status .message .request_id .body
    │   ├── BadRequestError         400  the message names the offending field
    │   ├── AuthenticationError     401  missing, unknown or revoked API key
    │   ├── PermissionDeniedError   403
    │   │   └── QuotaExhaustedError      quota exhausted; .limit .used .requested .hint
    │   ├── NotFoundError           404  unknown id, or another customer's
    │   ├── ConflictError           409  email taken, idempotency key reused with another body,
    │   │                                job export asked for before the job completed,
    │   │                                or a receipt before the task is settled and mined
    │   ├── PayloadTooLargeError    413
    │   ├── RateLimitError          429  has .retry_after (seconds, or None)
    │   └── ServerError             5xx
    ├── PollTimeoutError        poll_result() / wait_for_*() gave up; .task_id .last_status .timeout
    ├── NoReceiptError          wait_for_receipt(): the task paid nobody; has .task_id .status
    ├── JobTimeoutError         wait_job() gave up; has .job_id .last_status .timeout .job
    ├── WebhookSignatureError   verify_webhook_signature() refused a delivery (no I/O involved)
    └── ReceiptInvalid          verify_receipt_document() or verify_receipt() refused a payout
                                receipt (the check itself does no I/O)
"""

from __future__ import annotations

from typing import Any

import httpx

from ._retry import parse_retry_after


class ASGError(Exception):
    """Root of every exception the SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(ASGError):
    """The request got no HTTP answer; the httpx exception is the ``__cause__``."""


class APIStatusError(ASGError):
    """The gateway answered with an error status.

    ``message`` is the server's ``{"error": ...}`` text, ``body`` the decoded JSON (or the raw
    text when it was not JSON), ``request_id`` the ``X-Request-ID`` header to quote to support.
    """

    def __init__(self, status: int, message: str, request_id: str | None, body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        text = f"{self.status} {self.message}"
        return f"{text} (request_id={self.request_id})" if self.request_id else text


class BadRequestError(APIStatusError):
    """400: the request broke a rule of the API; the message names the field."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the customer may not do this now, e.g. ``quota exhausted``."""


class QuotaExhaustedError(PermissionDeniedError):
    """403 ``quota exhausted``: the label quota cannot hold the request. ``limit`` is the
    customer's quota, ``used`` the labels already reserved, ``requested`` what the request
    needed (all in labels; a task reserves its consensus threshold), ``hint`` the way out."""

    limit: int | None = None
    used: int | None = None
    requested: int | None = None
    hint: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.limit is None:
            return text
        return f"{text}: {self.requested} labels requested, {self.used} of {self.limit} used; {self.hint}"


class NotFoundError(APIStatusError):
    """404: no such id for this customer (another customer's ids look the same)."""


class ConflictError(APIStatusError):
    """409: the email is registered, the idempotency key was used with another body, or a job's
    export was asked for while the job is not completed (still running, or failed)."""


class PayloadTooLargeError(APIStatusError):
    """413: the body is over the gateway's limit (64 KiB, 8 MiB for a batch)."""


class RateLimitError(APIStatusError):
    """429: slow down; ``retry_after`` is the server's hint in seconds when it sent one."""

    retry_after: float | None = None


class ServerError(APIStatusError):
    """5xx: the gateway or the core behind it failed; 503 means the core is unreachable."""


class PollTimeoutError(ASGError, TimeoutError):
    """``poll_result`` or a ``wait_for_*`` reached its timeout; ``last_status`` says where the
    task was. Also a builtin ``TimeoutError``, so ``except TimeoutError`` catches it."""

    def __init__(self, task_id: str, last_status: str | None, timeout: float) -> None:
        super().__init__(f"task {task_id} still {last_status} after {timeout:g} s")
        self.task_id = task_id
        self.last_status = last_status
        self.timeout = timeout


class NoReceiptError(ASGError):
    """``wait_for_receipt``: the task ended without paying anyone (failed, or cancelled or
    expired before any label), so no receipt will ever exist."""

    def __init__(self, task_id: str, status: str | None) -> None:
        super().__init__(f"task {task_id} ended {status} and paid nobody: it has no receipt")
        self.task_id = task_id
        self.status = status


class JobTimeoutError(ASGError, TimeoutError):
    """``wait_job`` reached its timeout before the job completed or failed (also a builtin
    ``TimeoutError``).

    The job goes on running on the server: ``job`` is the last state seen (counts included), and
    waiting again, or ``get_job``, picks it up where it is.
    """

    def __init__(self, job_id: str, last_status: str | None, timeout: float, job: dict[str, Any]) -> None:
        super().__init__(f"job {job_id} still {last_status} after {timeout:g} s")
        self.job_id = job_id
        self.last_status = last_status
        self.timeout = timeout
        self.job = job


class WebhookSignatureError(ASGError):
    """A webhook delivery failed verification; answer it with a 4xx and do not act on it.

    The message says why: a missing or malformed ``ASG-Signature`` header, no matching signature,
    a timestamp outside the tolerance, or a body that is not a JSON object.
    """


class ReceiptInvalid(ASGError):
    """A payout receipt failed offline verification; the message names the check: the BEEF, the
    txid, an input script, a claimed output (amount or address), the merkle path, or the header.
    """


# The one map from status to class; any other 5xx is a ServerError, anything else the base class.
_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_class(status: int) -> type[APIStatusError]:
    """The exception class raised for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


def error_from_response(response: httpx.Response) -> APIStatusError:
    """Translate an error response into the exception for its status."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    error = body.get("error") if isinstance(body, dict) else None
    message = error if isinstance(error, str) else response.reason_phrase
    request_id = response.headers.get("X-Request-ID")
    cls = error_class(response.status_code)
    if cls is PermissionDeniedError and isinstance(body, dict) and message == "quota exhausted":
        quota = QuotaExhaustedError(response.status_code, message, request_id, body)
        quota.limit, quota.used = _int_field(body, "limit"), _int_field(body, "used")
        quota.requested = _int_field(body, "requested")
        quota.hint = body["hint"] if isinstance(body.get("hint"), str) else None
        return quota
    error = cls(response.status_code, message, request_id, body)
    if isinstance(error, RateLimitError):
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
