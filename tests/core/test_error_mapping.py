"""The status tables are complete: no gRPC code reaches the gateway unmapped, no domain error
reaches a servicer unmapped, no submission refusal reaches the gateway unmapped, and the
documented pairs (docs/api.md, Errors) hold end to end.
"""

from __future__ import annotations

import importlib
import pkgutil

import grpc
import pytest

import asg_grpc.domain
from asg_grpc.domain import errors
from asg_grpc.services.errors import REFUSAL_REASONS, refusal_for, status_code_for
from asg_grpc.v1 import tasks_pb2
from rest_gateway.errors import HTTP_STATUS, REFUSAL_STATUS


def all_domain_errors() -> list[type[errors.DomainError]]:
    """DomainError and every subclass defined anywhere in the domain package."""
    for module in pkgutil.iter_modules(asg_grpc.domain.__path__):
        importlib.import_module(f"asg_grpc.domain.{module.name}")
    found: list[type[errors.DomainError]] = []
    pending: list[type[errors.DomainError]] = [errors.DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def instance(cls: type[errors.DomainError]) -> errors.DomainError:
    # The mapping looks only at the class; constructors differ in their arguments.
    return cls.__new__(cls)


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_every_grpc_error_code_has_an_http_status(code: grpc.StatusCode) -> None:
    assert code in HTTP_STATUS
    assert 400 <= HTTP_STATUS[code] <= 599


def test_ok_is_not_an_error() -> None:
    assert grpc.StatusCode.OK not in HTTP_STATUS


@pytest.mark.parametrize(
    "cls", [c for c in all_domain_errors() if c is not errors.DomainError], ids=lambda c: c.__name__
)
def test_every_domain_error_has_a_grpc_code(cls: type[errors.DomainError]) -> None:
    code = status_code_for(instance(cls))

    assert code in HTTP_STATUS
    assert code not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


@pytest.mark.parametrize(
    ("error", "code", "http"),
    [
        (errors.ValidationError("label_spec.question", "is required"),
         grpc.StatusCode.INVALID_ARGUMENT, 400),
        (errors.Unauthenticated("invalid api key"), grpc.StatusCode.UNAUTHENTICATED, 401),
        (errors.QuotaExhausted(500, 498, 3, "cust_x"), grpc.StatusCode.PERMISSION_DENIED, 403),
        (errors.NotFound("task not found"), grpc.StatusCode.NOT_FOUND, 404),
        (errors.EmailTaken(), grpc.StatusCode.ALREADY_EXISTS, 409),
        (errors.IdempotencyConflict(), grpc.StatusCode.ALREADY_EXISTS, 409),
        (errors.RateLimited(3), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)  # fmt: skip
def test_documented_errors_reach_their_http_status(
    error: errors.DomainError, code: grpc.StatusCode, http: int
) -> None:
    assert status_code_for(error) == code
    assert HTTP_STATUS[code] == http


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_documented_infrastructure_codes(code: grpc.StatusCode, http: int) -> None:
    assert HTTP_STATUS[code] == http


def test_an_unmapped_error_is_refused_loudly() -> None:
    # The root itself has no code: a new direct subclass would fail here, not become UNKNOWN.
    with pytest.raises(LookupError):
        status_code_for(errors.DomainError("x"))


@pytest.mark.parametrize(
    "reason",
    [r for r in tasks_pb2.Refusal.Reason.values() if r != tasks_pb2.Refusal.REASON_UNSPECIFIED],
    ids=tasks_pb2.Refusal.Reason.Name,
)
def test_every_refusal_reason_has_an_http_status(reason: tasks_pb2.Refusal.Reason) -> None:
    assert reason in REFUSAL_STATUS
    assert 400 <= REFUSAL_STATUS[reason] <= 599
    assert reason in REFUSAL_REASONS.values()


@pytest.mark.parametrize("cls", list(REFUSAL_REASONS), ids=lambda c: c.__name__)
def test_a_carried_refusal_gets_the_http_status_of_the_same_error_alone(
    cls: type[errors.DomainError],
) -> None:
    # POST /v1/tasks goes through SubmitTasks (a Refusal), gRPC clients through SubmitTask
    # (a status code): the same error must answer the same HTTP status either way.
    refusal = refusal_for(instance_with_message(cls))

    assert REFUSAL_STATUS[refusal.reason] == HTTP_STATUS[status_code_for(instance(cls))]


def instance_with_message(cls: type[errors.DomainError]) -> errors.DomainError:
    error = instance(cls)
    error.message = "refused"  # what refusal_for reads besides the class
    if isinstance(error, errors.RateLimited):
        error.retry_after = 1
    if isinstance(error, errors.QuotaExhausted):
        error.limit, error.used, error.requested, error.hint = 500, 498, 3, "ask"
    return error


def test_a_quota_refusal_carries_its_figures() -> None:
    refusal = refusal_for(errors.QuotaExhausted(500, 498, 3, "cust_x"))
    assert (refusal.reason, refusal.message) == (tasks_pb2.Refusal.REASON_QUOTA_EXHAUSTED, "quota exhausted")
    assert (refusal.quota.limit, refusal.quota.used, refusal.quota.requested) == (500, 498, 3)
    assert "asg customer tier cust_x pro" in refusal.quota.hint
    assert not refusal_for(errors.RateLimited(3)).HasField("quota")


def test_a_refusal_names_its_field_and_wait() -> None:
    invalid = refusal_for(errors.ValidationError("label_spec.options", "must contain at least 2 entries"))
    limited = refusal_for(errors.RateLimited(3))
    conflict = refusal_for(errors.IdempotencyConflict("tasks[2].idempotency_key"))

    assert (invalid.reason, invalid.field) == (
        tasks_pb2.Refusal.REASON_INVALID_ARGUMENT,
        "label_spec.options",
    )
    assert (limited.reason, limited.retry_after_seconds) == (tasks_pb2.Refusal.REASON_RATE_LIMITED, 3)
    assert conflict.field == "tasks[2].idempotency_key"


def test_an_error_that_cannot_refuse_a_submission_is_refused_loudly() -> None:
    with pytest.raises(LookupError):
        refusal_for(errors.NotFound("task not found"))
