"""The gateway's one connection to the core: a gRPC channel and the stubs over it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import grpc
from fastapi import Depends
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import Request

from asg_common import logs
from asg_grpc.v1 import (
    billing_pb2_grpc,
    chain_pb2_grpc,
    dashboard_pb2_grpc,
    jobs_pb2_grpc,
    tasks_pb2_grpc,
    webhooks_pb2_grpc,
)
from rest_gateway import decode
from rest_gateway.coalesce import SubmitMultiplexer
from rest_gateway.errors import Unauthorized

MAX_MESSAGE_BYTES = 16 * 1024 * 1024

Reply = TypeVar("Reply")


class CoreClient:
    def __init__(self, target: str, timeout: float) -> None:
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Find a restarted core quickly rather than after gRPC's default 1 s+ backoff.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self.tasks = tasks_pb2_grpc.TaskServiceStub(self.channel)
        # Many single submissions per call; a call must fit in one message.
        self.submissions = SubmitMultiplexer(
            self.tasks, timeout, max_per_call=MAX_MESSAGE_BYTES // decode.SMALL_BODY
        )
        self.billing = billing_pb2_grpc.BillingServiceStub(self.channel)
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(self.channel)
        self.jobs = jobs_pb2_grpc.JobServiceStub(self.channel)
        self.chain = chain_pb2_grpc.ChainServiceStub(self.channel)
        self.dashboard = dashboard_pb2_grpc.DashboardServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def serving(self, timeout: float = 1.0) -> bool:
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()


def call_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """What the core needs to know of the HTTP request: who calls, and the request id (so the
    core's log lines for it carry the same `request_id` as the gateway's)."""
    rid = getattr(request.state, "request_id", None)
    ident: tuple[tuple[str, str], ...] = ((logs.REQUEST_ID_HEADER, rid),) if rid else ()
    authorization = request.headers.get("authorization")
    if authorization is None:
        return ident
    if not authorization.isascii():  # gRPC metadata is ASCII, and so is every key
        raise Unauthorized("invalid api key")
    return (("authorization", authorization), *ident)


def core(request: Request) -> CoreClient:
    return request.app.state.core


@dataclass(frozen=True, slots=True)
class CoreCall:
    """One HTTP request's way to the core: its stubs, its caller's metadata, the timeout."""

    client: CoreClient
    metadata: tuple[tuple[str, str], ...]

    async def __call__(self, method: Callable[..., Awaitable[Reply]], message: Message) -> Reply:
        """`method` (a stub's unary method) with `message`, as this request's caller."""
        return await method(message, metadata=self.metadata, timeout=self.client.timeout)


def core_call(request: Request) -> CoreCall:
    """A route's way to the core: a parameter `call: Core`."""
    return CoreCall(core(request), call_metadata(request))


Core = Annotated[CoreCall, Depends(core_call)]
