"""The SDK's billing calls against the real stack: usage and invoices, sync and async."""

from __future__ import annotations

import time
from typing import Any

import pytest

from asg_gateway import ASGGatewayClient, AsyncASGGatewayClient, AuthenticationError, BadRequestError
from asg_grpc.devstack import Stack


def this_month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


def test_get_usage_reads_a_month_and_defaults_to_the_current_one(
    stack: Stack, customer: dict[str, Any]
) -> None:
    with ASGGatewayClient(customer["api_key"], stack.base_url) as client:
        client.submit_task(
            "moderation", "https://cdn.example.com/sdk.txt", {"question": "Ok?", "options": ["y", "n"]}
        )

        current = client.get_usage()
        april = client.get_usage("2026-04")

    assert current["month"] == this_month()
    assert current["by_type"]["moderation"]["tasks_submitted"] == 1
    assert current["sats_charged"] == 0  # nothing decided: nothing charged
    assert april["month"] == "2026-04"


def test_get_usage_with_a_bad_month_raises_bad_request_naming_it(
    stack: Stack, customer: dict[str, Any]
) -> None:
    with (
        ASGGatewayClient(customer["api_key"], stack.base_url) as client,
        pytest.raises(BadRequestError) as info,
    ):
        client.get_usage("2026-13")

    assert info.value.message.startswith("month ")


def test_list_invoices_starts_with_the_current_draft(stack: Stack, customer: dict[str, Any]) -> None:
    with ASGGatewayClient(customer["api_key"], stack.base_url) as client:
        invoices = client.list_invoices()["invoices"]

    assert [(i["month"], i["status"], i["total_sats"]) for i in invoices] == [(this_month(), "draft", 0)]


def test_billing_calls_need_a_valid_key(stack: Stack) -> None:
    with ASGGatewayClient("sk_sandbox_nope", stack.base_url) as client, pytest.raises(AuthenticationError):
        client.list_invoices()


@pytest.mark.asyncio
async def test_async_billing_calls(stack: Stack, customer: dict[str, Any]) -> None:
    async with AsyncASGGatewayClient(customer["api_key"], stack.base_url) as client:
        usage = await client.get_usage(this_month())
        invoices = await client.list_invoices()

    assert (usage["month"], usage["tier"]) == (this_month(), "sandbox")
    assert invoices["invoices"][0]["status"] == "draft"
