"""A bounded schemathesis run against /v1/openapi.json on a real stack: whatever it sends, no 5xx,
and every answer's status, content type, headers and body match what the schema says."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from asg_grpc.devstack import Stack
from tests.conftest import register

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_api_keeps_to_its_schema(stack: Stack) -> None:
    """Every operation, a dozen generated cases each (a few hundred requests in all).

    Driven by hand rather than through schemathesis' pytest plugin, whose lazy fixtures do not
    run under this pytest; the cases and checks are the same."""
    headers = {"Authorization": f"Bearer {register(stack.base_url)['api_key']}"}
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def keeps_to_its_schema(case: Any) -> None:
            case.call_and_validate(base_url=stack.base_url, headers=headers, checks=CHECKS, timeout=30)

        keeps_to_its_schema()
