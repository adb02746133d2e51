"""Domain errors → gRPC status codes: the one table, applied by one decorator."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc

from asg_grpc.domain import errors

log = logging.getLogger("asg.services")

# Looked up along the exception's class hierarchy, most specific first.
STATUS_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.ValidationError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.NotReady: grpc.StatusCode.FAILED_PRECONDITION,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
RETRY_AFTER = "retry-after"  # trailing metadata of RESOURCE_EXHAUSTED: whole seconds


def status_code_for(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    raise LookupError(f"{type(exc).__name__} has no gRPC status code")


Servicer = TypeVar("Servicer")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """context.abort, typed as what it does: it never returns."""
    await context.abort(code, details)
    raise AssertionError("context.abort returned")


async def abort_for(context: grpc.aio.ServicerContext, exc: errors.DomainError) -> NoReturn:
    """End the call with the error's mapped code and message (and `retry-after` when limited)."""
    if isinstance(exc, errors.RateLimited):
        context.set_trailing_metadata(((RETRY_AFTER, str(exc.retry_after)),))
    await abort(context, status_code_for(exc), exc.message)


def maps_domain_errors(
    handler: Callable[[Servicer, Req, grpc.aio.ServicerContext], Awaitable[Resp]],
) -> Callable[[Servicer, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Abort the call with the mapped code and the error's message on any DomainError."""

    @functools.wraps(handler)
    async def wrapper(self: Servicer, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await handler(self, request, context)
        except errors.DomainError as exc:
            await abort_for(context, exc)

    return wrapper
