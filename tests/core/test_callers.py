"""Who is calling, over a real gRPC channel to an in-process core: each kind of caller is known
by its own token only, a wrong token is UNAUTHENTICATED, and one rate limit per key holds
across every service the key calls (docs/billing.md)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.server import Core
from asg_grpc.settings import Settings
from asg_grpc.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    labeling_pb2,
    labeling_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

pytestmark = pytest.mark.asyncio

OPERATOR = "op_callers_test"
BURST = 3  # calls a sandbox key may make at once; no token comes back while a test runs


@dataclass
class Caller:
    channel: grpc.aio.Channel
    api_key: str
    customer_id: str
    worker_token: str

    @property
    def billing(self) -> billing_pb2_grpc.BillingServiceStub:
        return billing_pb2_grpc.BillingServiceStub(self.channel)

    @property
    def labeling(self) -> labeling_pb2_grpc.LabelingServiceStub:
        return labeling_pb2_grpc.LabelingServiceStub(self.channel)


def address(seed: str) -> str:
    return p2pkh_address(hashlib.sha256(seed.encode()).digest()[:20])


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest_asyncio.fixture
async def core(tmp_path: Path) -> AsyncIterator[Caller]:
    # Read as asg-server reads it, so the tiers come from ASG_TIERS like in production.
    settings = Settings.from_env(
        {
            "ASG_DATA_DIR": str(tmp_path),
            "ASG_GRPC_ADDR": "127.0.0.1:0",
            "ASG_OPERATOR_TOKEN": OPERATOR,
            "ASG_TIERS": json.dumps({"sandbox": {"rate_limit": {"per_second": 0.001, "burst": BURST}}}),
        }
    )
    running = Core(settings)
    await running.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        billing = billing_pb2_grpc.BillingServiceStub(channel)
        registered = await billing.RegisterCustomer(
            billing_pb2.RegisterCustomerRequest(name="Callers", email="callers@example.com")
        )
        worker = await labeling_pb2_grpc.LabelingServiceStub(channel).RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(name="w", payout_address=address("callers")),
            metadata=bearer(OPERATOR),
        )
        yield Caller(channel, registered.api_key, registered.customer.customer_id, worker.token)
    finally:
        await channel.close()
        await running.stop()


async def refusal(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code(), err.value.details() or ""


async def welcome(caller: Caller, token: str) -> labeling_pb2.ServerMessage:
    """The first message of a Work stream opened with `token`."""
    hello = labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1))
    queue: asyncio.Queue[labeling_pb2.WorkerMessage] = asyncio.Queue()
    queue.put_nowait(hello)

    async def requests() -> AsyncIterator[labeling_pb2.WorkerMessage]:
        while True:
            yield await queue.get()

    stream = caller.labeling.Work(requests(), metadata=bearer(token))
    try:
        first: labeling_pb2.ServerMessage = await asyncio.wait_for(stream.read(), 10)
        return first
    finally:
        stream.cancel()


async def test_a_customer_is_known_by_its_api_key_only(core: Caller) -> None:
    me = await core.billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=bearer(core.api_key))
    assert me.customer_id == core.customer_id

    for token in (core.worker_token, OPERATOR, "sk_sandbox_unknown"):
        code, details = await refusal(
            core.billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=bearer(token))
        )
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid api key")
    code, details = await refusal(core.billing.GetCustomer(billing_pb2.GetCustomerRequest()))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "missing api key")


async def test_a_worker_is_known_by_its_worker_token_only(core: Caller) -> None:
    first = await welcome(core, core.worker_token)
    assert first.WhichOneof("kind") == "welcome"

    for token in (core.api_key, OPERATOR):
        code, details = await refusal(welcome(core, token))
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid worker token")


async def test_operator_rpcs_take_the_operator_token_only(core: Caller) -> None:
    request = billing_pb2.SetCustomerTierRequest(customer_id=core.customer_id, tier="pro")
    moved = await core.billing.SetCustomerTier(request, metadata=bearer(OPERATOR))
    assert moved.tier == "pro"

    for token in (core.api_key, core.worker_token, OPERATOR + "x", OPERATOR[:-1]):
        code, details = await refusal(
            core.billing.SetCustomerTier(
                billing_pb2.SetCustomerTierRequest(customer_id=core.customer_id, tier="sandbox"),
                metadata=bearer(token),
            )
        )
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid operator token")
        code, details = await refusal(
            core.labeling.RegisterWorker(
                labeling_pb2.RegisterWorkerRequest(name="w2", payout_address=address("w2")),
                metadata=bearer(token),
            )
        )
        assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid operator token")


async def test_one_rate_limit_per_key_across_services(core: Caller) -> None:
    tasks = tasks_pb2_grpc.TaskServiceStub(core.channel)
    webhooks = webhooks_pb2_grpc.WebhookServiceStub(core.channel)
    key = bearer(core.api_key)
    await core.billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=key)
    await webhooks.ListWebhooks(webhooks_pb2.ListWebhooksRequest(), metadata=key)
    # A call the service then refuses still counted against the key.
    code, _ = await refusal(tasks.GetTask(tasks_pb2.GetTaskRequest(task_id="tsk_missing"), metadata=key))
    assert code == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tasks.ListTasks(tasks_pb2.ListTasksRequest(), metadata=key)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(err.value.trailing_metadata() or ())["retry-after"]) >= 1

    # Another key of the same tier has its own bucket.
    other = await core.billing.RegisterCustomer(
        billing_pb2.RegisterCustomerRequest(name="Other", email="other@example.com")
    )
    me = await core.billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=bearer(other.api_key))
    assert me.rate_limit.burst == BURST
