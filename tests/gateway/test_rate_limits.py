"""Per-key rate limits, enforced in the core, seen through the gateway: 429 with Retry-After
after the burst, success again after waiting, limits per tier, coalesced submissions limited
per key, health never limited.

The stack here turns the limit on (tests/conftest.py turns it off for the other tests) with
small tiers: `quick` refills a token a second, so waiting is short; the others refill so slowly
that no token comes back while a test runs, so the counts are exact however slow the machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from asg_gateway import ASGGatewayClient, RateLimitError
from asg_grpc.devstack import Stack
from asg_grpc.operator import find_operator_token, set_customer_tier
from asg_grpc.settings import Settings
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, common_pb2, tasks_pb2, tasks_pb2_grpc
from tests.conftest import make_stack, register

SANDBOX_BURST, PRO_BURST, TRICKLE_BURST = 3, 6, 4
TRICKLE = {"label_price_sats": 300, "task_price_sats": 100, "label_quota": 100}
TIERS = {
    "sandbox": {"rate_limit": {"per_second": 0.001, "burst": SANDBOX_BURST}},
    "pro": {"rate_limit": {"per_second": 0.001, "burst": PRO_BURST}},
    "quick": {**TRICKLE, "rate_limit": {"per_second": 1.0, "burst": 2}},
    "trickle": {**TRICKLE, "rate_limit": {"per_second": 0.001, "burst": TRICKLE_BURST}},
}
TASK = {
    "type": "sentiment",
    "data_url": "https://cdn.example.com/limits.txt",
    "label_spec": {"question": "Tone?", "options": ["good", "bad"]},
    "consensus_threshold": 2,
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(
        tmp_path_factory.mktemp("limits"), ASG_RATE_LIMIT="on", ASG_TIERS=json.dumps(TIERS)
    ) as stack:
        yield stack


def new_key(stack: Stack, tier: str = "sandbox") -> str:
    registered = register(stack.base_url)
    if tier != "sandbox":
        operator = find_operator_token(Settings(data_dir=stack.data_dir))
        assert operator is not None
        set_customer_tier(stack.grpc_addr, operator, registered["customer_id"], tier)
    key: str = registered["api_key"]
    return key


def me(stack: Stack, key: str) -> httpx.Response:
    return httpx.get(
        f"{stack.base_url}/v1/customers/me", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def calls_until_limited(stack: Stack, key: str, most: int = 50) -> tuple[int, httpx.Response]:
    """How many calls succeed before the first 429, and that 429."""
    for n in range(most):
        reply = me(stack, key)
        if reply.status_code == 429:
            return n, reply
        assert reply.status_code == 200, reply.text
    pytest.fail(f"no 429 in {most} calls")


def test_after_the_burst_a_key_gets_429_with_retry_after(limited: Stack) -> None:
    registered = register(limited.base_url)
    key, customer_id = registered["api_key"], registered["customer_id"]

    allowed, reply = calls_until_limited(limited, key)

    assert allowed == SANDBOX_BURST
    assert reply.headers["Retry-After"].isdigit() and int(reply.headers["Retry-After"]) >= 1
    error = reply.json()["error"]
    assert error.startswith(f"rate limit exceeded: retry after {reply.headers['Retry-After']} s; ")
    # The numbers and the way out, as a quota refusal has them (issue 16).
    assert f"the sandbox tier allows 0.001 calls per second per key (burst {SANDBOX_BURST})" in error
    assert f"asg customer tier {customer_id} pro" in error
    assert reply.headers["content-type"] == "application/json"


def test_after_waiting_retry_after_the_key_succeeds_again(limited: Stack) -> None:
    key = new_key(limited, "quick")
    _, reply = calls_until_limited(limited, key)

    asyncio.run(asyncio.sleep(int(reply.headers["Retry-After"])))

    assert me(limited, key).status_code == 200


def test_limits_are_per_tier(limited: Stack) -> None:
    sandbox, pro = new_key(limited), new_key(limited, "pro")

    assert calls_until_limited(limited, sandbox)[0] == SANDBOX_BURST
    assert calls_until_limited(limited, pro)[0] == PRO_BURST


def test_one_key_over_its_limit_leaves_other_keys_alone(limited: Stack) -> None:
    first, second = new_key(limited, "pro"), new_key(limited, "pro")
    calls_until_limited(limited, first)

    assert me(limited, second).status_code == 200


def test_every_route_a_key_calls_counts_and_quota_stays_403(limited: Stack) -> None:
    key = new_key(limited, "trickle")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=limited.base_url, headers=headers, timeout=10) as http:
        assert http.get("/v1/billing/usage").status_code == 200
        assert http.get("/v1/webhooks").status_code == 200
        # The whole quota (100 labels), then over it: 403, not 429, while tokens are left.
        full = {"tasks": [{**TASK, "consensus_threshold": 10}] * 10}
        assert http.post("/v1/tasks/batch", json=full).status_code == 202
        over = http.post("/v1/tasks/batch", json=full)
        assert (over.status_code, over.json()["error"]) == (403, "quota exhausted")
        assert (over.json()["limit"], over.json()["used"], over.json()["requested"]) == (100, 100, 100)
        # That was the fourth call: the fifth, whatever the route, is over the limit.
        assert http.get("/v1/tasks").status_code == 429


def test_coalesced_submissions_refuse_only_the_over_limit_callers(limited: Stack) -> None:
    busy, quiet = new_key(limited, "trickle"), new_key(limited, "trickle")

    async def burst() -> list[tuple[str, httpx.Response]]:
        async with httpx.AsyncClient(base_url=limited.base_url, timeout=10) as http:

            async def post(key: str) -> tuple[str, httpx.Response]:
                reply = await http.post("/v1/tasks", json=TASK, headers={"Authorization": f"Bearer {key}"})
                return key, reply

            # Sent together, so the gateway carries them in shared SubmitTasks calls.
            return await asyncio.gather(*[post(busy) for _ in range(10)], *[post(quiet) for _ in range(2)])

    replies = asyncio.run(burst())

    busy_codes = sorted(r.status_code for k, r in replies if k == busy)
    quiet_codes = [r.status_code for k, r in replies if k == quiet]
    assert busy_codes == [202] * TRICKLE_BURST + [429] * (10 - TRICKLE_BURST)
    assert quiet_codes == [202, 202]
    refused = next(r for k, r in replies if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"].startswith("rate limit exceeded")


def test_health_is_never_limited(limited: Stack) -> None:
    key = new_key(limited)
    calls_until_limited(limited, key)

    for _ in range(SANDBOX_BURST * 3):
        reply = httpx.get(
            f"{limited.base_url}/v1/health", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert reply.status_code == 200


def test_an_unknown_key_is_401_not_429(limited: Stack) -> None:
    for _ in range(SANDBOX_BURST * 2):
        assert me(limited, "sk_sandbox_unknown").status_code == 401


def test_grpc_callers_get_resource_exhausted_with_retry_after_metadata(limited: Stack) -> None:
    key = new_key(limited, "pro")
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(limited.grpc_addr) as channel:
        billing = billing_pb2_grpc.BillingServiceStub(channel)
        for _ in range(PRO_BURST):
            billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=metadata, timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=metadata, timeout=10)

    error: Any = info.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = dict(error.trailing_metadata())["retry-after"]
    assert int(retry_after) >= 1


def test_profile_reports_the_enforced_limit(limited: Stack) -> None:
    body = me(limited, new_key(limited, "pro")).json()

    assert body["rate_limit"] == {"per_second": 0.001, "burst": PRO_BURST, "enforced": True}


def test_sdk_raises_rate_limit_error_with_retry_after(limited: Stack) -> None:
    key = new_key(limited, "pro")
    with ASGGatewayClient(key, limited.base_url, max_retries=0) as client:
        for _ in range(PRO_BURST):
            client.me()
        with pytest.raises(RateLimitError) as info:
            client.me()

    assert info.value.status == 429
    assert info.value.retry_after is not None and info.value.retry_after >= 1


def test_sdk_waits_out_retry_after_and_succeeds(limited: Stack) -> None:
    key = new_key(limited, "quick")  # a token a second: within what the SDK waits out
    calls_until_limited(limited, key)
    with ASGGatewayClient(key, limited.base_url, max_retries=2) as client:
        assert client.me()["tier"] == "quick"


def test_one_submit_tasks_call_refuses_only_the_over_limit_callers_submissions(limited: Stack) -> None:
    busy, quiet = new_key(limited, "trickle"), new_key(limited, "trickle")
    item = tasks_pb2.TaskInput(
        type="sentiment",
        data_url="https://cdn.example.com/one-call.txt",
        label_spec=common_pb2.LabelSpec(question="Tone?", options=["good", "bad"]),
        consensus_threshold=2,
    )
    callers = [busy] * 6 + [quiet]
    request = tasks_pb2.SubmitTasksRequest(
        submissions=[tasks_pb2.SubmitTaskRequest(authorization=f"Bearer {key}", task=item) for key in callers]
    )
    with grpc.insecure_channel(limited.grpc_addr) as channel:
        reply = tasks_pb2_grpc.TaskServiceStub(channel).SubmitTasks(request, timeout=10)

    kinds = [outcome.WhichOneof("outcome") for outcome in reply.outcomes]
    assert kinds == ["accepted"] * TRICKLE_BURST + ["refused"] * (6 - TRICKLE_BURST) + ["accepted"]
    refused = reply.outcomes[TRICKLE_BURST].refused
    assert refused.reason == tasks_pb2.Refusal.REASON_RATE_LIMITED
    assert refused.retry_after_seconds >= 1
