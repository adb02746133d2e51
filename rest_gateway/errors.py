"""gRPC status → HTTP status and `{"error": ...}` body: the one table, the one handler set.

GatewayError          raised by the gateway itself, before any gRPC call
├── BadRequest        malformed JSON, duplicate key, wrong JSON type, unknown field (400)
├── Unauthorized      an Authorization header gRPC metadata cannot carry (401)
├── PayloadTooLarge   body over the route's limit (413)
└── UnsupportedMediaType  a body whose Content-Type is not JSON (415)
grpc.aio.AioRpcError  from the core: mapped by HTTP_STATUS (a 403 over quota carries the
                      figures of the `asg-refusal-bin` trailing metadata; 429 carries the core's
                      `retry-after` trailing metadata as a Retry-After header; every 503
                      says `Retry-After: 1`: a restarting core is back within seconds)
Refused               the core's Refusal of one submission a shared SubmitTasks call carried
                      (coalesce.py): mapped by REFUSAL_STATUS (429 with its retry_after_seconds)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from google.protobuf.message import DecodeError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from asg_grpc.v1 import tasks_pb2

log = logging.getLogger("asg.gateway")

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    # The core not answering in time is the core being away (restarting, paused), not a
    # gateway of its own timing out: 503, retried like UNAVAILABLE (docs/api.md).
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}

REFUSAL_STATUS: dict[tasks_pb2.Refusal.Reason, int] = {
    tasks_pb2.Refusal.REASON_INVALID_ARGUMENT: 400,
    tasks_pb2.Refusal.REASON_UNAUTHENTICATED: 401,
    tasks_pb2.Refusal.REASON_QUOTA_EXHAUSTED: 403,
    tasks_pb2.Refusal.REASON_IDEMPOTENCY_CONFLICT: 409,
    tasks_pb2.Refusal.REASON_RATE_LIMITED: 429,
    tasks_pb2.Refusal.REASON_UNAVAILABLE: 503,
}

# For these the core's details may describe internals; callers get a fixed message.
_OPAQUE = {
    503: "core unavailable",
    500: "internal error",
    501: "not implemented",
}


class GatewayError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GatewayError):
    status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")


class Unauthorized(GatewayError):
    status = 401


class PayloadTooLarge(GatewayError):
    status = 413


class UnsupportedMediaType(GatewayError):
    status = 415


def _request_id(request: Request) -> str | None:
    """The id the gateway's middleware (middleware.py) gave the request (None outside it), for
    the log lines."""
    return getattr(request.state, "request_id", None)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, object] | None = None
) -> Response:
    """`{"error": message}`, the seeds' body; `extra` fields (a quota's figures) go beside it."""
    body = {"error": message, **(extra or {})}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _quota_fields(refusal: tasks_pb2.Refusal | None) -> dict[str, object] | None:
    """A quota refusal's `limit`, `used`, `requested` (labels) and `hint` (docs/api.md)."""
    if refusal is None or not refusal.HasField("quota"):
        return None
    quota = refusal.quota
    return {"limit": quota.limit, "used": quota.used, "requested": quota.requested, "hint": quota.hint}


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc.status, exc.message)


class Refused(Exception):
    """The core refused one submission of a shared SubmitTasks call (see coalesce.py)."""

    def __init__(self, refusal: tasks_pb2.Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


# Seconds a client waits before trying again after a 503: about what a core restart takes.
UNAVAILABLE_RETRY_AFTER = 1


def _core_status(
    request: Request,
    status: int,
    reason: str,
    details: str | None,
    retry_after: int = 0,
    refusal: tasks_pb2.Refusal | None = None,
) -> Response:
    if status in _OPAQUE:
        log.warning(
            "core call failed",
            extra={"code": reason, "details": details, "request_id": _request_id(request)},
        )
        retry = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)} if status == 503 else None
        return error_response(status, _OPAQUE[status], retry)
    headers = None
    if status == 429 and retry_after > 0:
        # The core's rate limit says how long (whole seconds, at least 1). gRPC's own
        # RESOURCE_EXHAUSTED (a message over the size limit) says nothing: no header then.
        headers = {"Retry-After": str(retry_after)}
    return error_response(status, details or reason.lower(), headers, _quota_fields(refusal))


def _retry_after(metadata: Iterable[tuple[str, str | bytes]] | None) -> int:
    """The core's `retry-after` trailing metadata (whole seconds), 0 when absent or bad."""
    for key, value in metadata or ():
        if key == "retry-after":
            text = value if isinstance(value, str) else value.decode("ascii", "replace")
            return int(text) if text.isdigit() else 0
    return 0


def _refusal(metadata: Iterable[tuple[str, str | bytes]] | None) -> tasks_pb2.Refusal | None:
    """The Refusal the core put in `asg-refusal-bin` trailing metadata; None when absent or bad."""
    for key, value in metadata or ():
        if key == "asg-refusal-bin" and isinstance(value, bytes):
            refusal = tasks_pb2.Refusal()
            try:
                refusal.ParseFromString(value)
            except DecodeError:
                return None
            return refusal
    return None


async def _rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status = HTTP_STATUS.get(code, 500)
    trailers = exc.trailing_metadata()
    retry_after = _retry_after(trailers)
    return _core_status(request, status, code.name, exc.details() or "", retry_after, _refusal(trailers))


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    refusal = exc.refusal
    status = REFUSAL_STATUS.get(refusal.reason, 500)
    reason = tasks_pb2.Refusal.Reason.Name(refusal.reason)
    return _core_status(request, status, reason, refusal.message, refusal.retry_after_seconds, refusal)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "not found" if exc.status_code == 404 else str(exc.detail).lower()
    return error_response(exc.status_code, message, getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"][1:]) or "request"
    return error_response(400, f"{field} {first['msg'].lower()}")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc, extra={"request_id": _request_id(request)})
    return error_response(500, "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
