"""Errors → gRPC status codes: the tables, applied once to every call by `ErrorInterceptor`.

What a handler raises, and what the caller sees:

DomainError                    its mapped code (STATUS_CODES) and its message
├── QuotaExhausted             …plus its Refusal (QuotaFigures) as `asg-refusal-bin` metadata
└── LimitReached               …plus `retry-after` trailing metadata when it says one
an undecodable request         INVALID_ARGUMENT "request is not a valid <type> message"
an id or metadata over its cap INVALID_ARGUMENT "<field> must be at most N characters"
any other exception            INTERNAL "internal error" (logged with its traceback)

A refused submission inside SubmitTasks is not the call's status: it travels as a
`tasks_pb2.Refusal` (REFUSAL_REASONS), so each caller a call carries gets its own. Details are
cut to MAX_DETAILS characters, so no message echoes more than a prefix of client input.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from asg_common import logs
from asg_grpc import metrics
from asg_grpc.domain import errors
from asg_grpc.domain.ids import MAX_ID
from asg_grpc.v1 import tasks_pb2

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
    errors.LimitReached: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
RETRY_AFTER = "retry-after"  # trailing metadata of RESOURCE_EXHAUSTED: whole seconds
REFUSAL_METADATA = "asg-refusal-bin"  # trailing metadata: a serialized Refusal (quota figures)

# What can refuse a submission (auth, rate limit, validation, the store's checks) → its reason.
REFUSAL_REASONS: dict[type[errors.DomainError], tasks_pb2.Refusal.Reason] = {
    errors.ValidationError: tasks_pb2.Refusal.REASON_INVALID_ARGUMENT,
    errors.Unauthenticated: tasks_pb2.Refusal.REASON_UNAUTHENTICATED,
    errors.QuotaExhausted: tasks_pb2.Refusal.REASON_QUOTA_EXHAUSTED,
    errors.IdempotencyConflict: tasks_pb2.Refusal.REASON_IDEMPOTENCY_CONFLICT,
    errors.RateLimited: tasks_pb2.Refusal.REASON_RATE_LIMITED,
    errors.Unavailable: tasks_pb2.Refusal.REASON_UNAVAILABLE,
}

# docs/api.md, "Limits": the longest details a status carries, and metadata value.
MAX_DETAILS = 300
MAX_METADATA_VALUE = 1024


def _lookup(table: dict[type[errors.DomainError], Any], exc: errors.DomainError, what: str) -> Any:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    raise LookupError(f"{type(exc).__name__} has no {what}")


def status_code_for(exc: errors.DomainError) -> grpc.StatusCode:
    code: grpc.StatusCode = _lookup(STATUS_CODES, exc, "gRPC status code")
    return code


def refusal_for(exc: errors.DomainError) -> tasks_pb2.Refusal:
    """The Refusal a SubmitTasks outcome carries for an error that refused one submission."""
    reason: tasks_pb2.Refusal.Reason = _lookup(REFUSAL_REASONS, exc, "refusal reason")
    return tasks_pb2.Refusal(
        reason=reason,
        field=getattr(exc, "field", ""),
        message=_bounded(exc.message),
        retry_after_seconds=exc.retry_after if isinstance(exc, errors.RateLimited) else 0,
        quota=_quota_figures(exc),
    )


def _quota_figures(exc: errors.DomainError) -> tasks_pb2.QuotaFigures | None:
    if not isinstance(exc, errors.QuotaExhausted):
        return None
    return tasks_pb2.QuotaFigures(
        limit=exc.limit, used=exc.used, requested=exc.requested, hint=_bounded(exc.hint)
    )


def _bounded(details: str) -> str:
    return details if len(details) <= MAX_DETAILS else details[: MAX_DETAILS - 1] + "…"


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """context.abort, typed as what it does: it never returns."""
    await context.abort(code, _bounded(details))
    raise AssertionError("context.abort returned")


async def abort_for(context: grpc.aio.ServicerContext, exc: errors.DomainError) -> NoReturn:
    """End the call with the error's mapped code and message (and `retry-after` when limited,
    the Refusal with its figures in `asg-refusal-bin` when over quota)."""
    if isinstance(exc, errors.LimitReached) and exc.retry_after > 0:
        context.set_trailing_metadata(((RETRY_AFTER, str(exc.retry_after)),))
    elif isinstance(exc, errors.QuotaExhausted):
        context.set_trailing_metadata(((REFUSAL_METADATA, refusal_for(exc).SerializeToString()),))
    await abort(context, status_code_for(exc), exc.message)


# interceptor ------------------------------------------------------------------------------

Behaviour = Callable[..., Any]


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Every handler of the server, guarded: the request decoded and its caps checked before
    the handler runs, and whatever it raises mapped to a status as the module docstring says."""

    def __init__(self) -> None:
        # Handlers are fixed at start: each is wrapped once, at its first call. Only methods
        # the server has are kept, so unknown names sent by a client cannot grow this.
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            handler = await continuation(handler_call_details)
            if handler is None:  # UNIMPLEMENTED, as grpc answers it
                return None
            guarded = self._guarded[method] = _guard(handler, method)
        return guarded


def _guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    parse: Callable[[bytes], Message] = handler.request_deserializer
    if handler.request_streaming:
        behaviour = handler.stream_stream if handler.response_streaming else handler.stream_unary
    else:
        behaviour = handler.unary_stream if handler.response_streaming else handler.unary_unary
    if parse is None or not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
        return handler  # not one of ours: leave it as grpc built it

    async def request(raw: Any, context: grpc.aio.ServicerContext) -> Message:
        try:
            message = parse(raw)
        except (DecodeError, ValueError, TypeError):
            name = _message_name(handler)
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {name} message")
        problem = _over_cap(message)
        if problem:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        return message

    async def requests(raw: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        async for item in raw:
            yield await request(item, context)

    async def arguments(raw: Any, context: grpc.aio.ServicerContext) -> Any:
        _bind_request_id(context)
        await _check_metadata(context)
        if handler.request_streaming:
            return requests(raw, context)
        return await request(raw, context)

    if inspect.isasyncgenfunction(behaviour):

        async def guarded_stream(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for reply in behaviour(await arguments(raw, context), context):
                    yield reply
            except Exception as exc:
                await _fail(context, exc)
            finally:
                metrics.grpc_call(method, _code_name(context))

        guarded: Behaviour = guarded_stream
    else:

        async def guarded_call(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(await arguments(raw, context), context)
            except Exception as exc:
                await _fail(context, exc)
            finally:
                metrics.grpc_call(method, _code_name(context))

        guarded = guarded_call

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    # No request deserializer: `request` above parses, so a bad message is a status, not UNKNOWN.
    return make(guarded, request_deserializer=None, response_serializer=handler.response_serializer)


def _code_name(context: grpc.aio.ServicerContext) -> str:
    """The call's status as grpc names it (OK when the handler set none)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return _CODE_NAMES.get(code, "OK") if isinstance(code, int) else "OK"


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


async def _fail(context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):  # the handler already set the status
        raise exc
    if isinstance(exc, errors.DomainError):
        # One line per refusal, with the caller's request_id, so a quoted id finds it here too.
        log.info("request refused", extra={"error": type(exc).__name__, "detail": str(exc)})
        await abort_for(context, exc)
    log.error("handler failed", exc_info=exc)
    await abort(context, grpc.StatusCode.INTERNAL, "internal error")


def _bind_request_id(context: grpc.aio.ServicerContext) -> None:
    """The caller's `x-request-id` (the gateway's), on every log line of this RPC's task."""
    for key, value in context.invocation_metadata() or ():
        if key == logs.REQUEST_ID_HEADER and isinstance(value, str) and logs.valid_request_id(value):
            logs.request_id.set(value)
            return


async def _check_metadata(context: grpc.aio.ServicerContext) -> None:
    for key, value in context.invocation_metadata() or ():
        if len(value) > MAX_METADATA_VALUE:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata {key[:64]} must be at most {MAX_METADATA_VALUE} characters",
            )


def _message_name(handler: grpc.RpcMethodHandler) -> str:
    """The request type's public name (asg.v1.…), from the generated deserializer."""
    owner = getattr(handler.request_deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor.full_name if isinstance(descriptor, Descriptor) else "request"


# Caps by field name, for the strings no domain rule bounds (the domain names its own limits).
def _cap(field: FieldDescriptor) -> int | None:
    if field.type != FieldDescriptor.TYPE_STRING:
        return None
    if field.name.endswith("_id") or field.name == "cursor":
        return MAX_ID
    if field.name == "authorization":
        return MAX_METADATA_VALUE
    return None


_Plan = list[tuple[FieldDescriptor, "int | _Plan"]]
_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    """The fields of a message type to check: capped strings, and messages holding some."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _PLANS[descriptor.full_name] = []  # set first: a recursive type ends here
        for field in descriptor.fields:
            cap = _cap(field)
            if cap is not None:
                plan.append((field, cap))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                inner = _plan(field.message_type)
                if inner:
                    plan.append((field, inner))
    return plan


def _over_cap(message: Message, prefix: str = "") -> str | None:
    """The first capped string that is too long, as a field-naming message; None when all fit."""
    for field, rule in _plan(message.DESCRIPTOR):
        value = getattr(message, field.name)
        repeated = field.is_repeated
        items = list(enumerate(value)) if repeated else [(None, value)]
        for index, item in items:
            name = f"{prefix}{field.name}" + ("" if index is None else f"[{index}]")
            if isinstance(rule, int):
                if len(item) > rule:
                    return f"{name} must be at most {rule} characters"
            elif repeated or message.HasField(field.name):
                problem = _over_cap(item, name + ".")
                if problem:
                    return problem
    return None
