"""The status tables are complete: no gRPC code reaches the gateway unmapped, no domain error
reaches a servicer unmapped, and the documented pairs (docs/api.md, Errors) hold end to end.
"""

from __future__ import annotations

import importlib
import pkgutil

import grpc
import pytest

import asg_grpc.domain
from asg_grpc.domain import errors
from asg_grpc.services.errors import status_code_for
from rest_gateway.errors import HTTP_STATUS


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
        (errors.QuotaExhausted(), grpc.StatusCode.PERMISSION_DENIED, 403),
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
