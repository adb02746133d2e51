"""An in-process core on a real gRPC port, and scripted agents speaking the Work protocol.

The core is the real `asg_grpc.server.Core` (SQLite file, dispatcher, services) serving on
127.0.0.1; the agents are real gRPC clients. Each test gets its own core and data dir, so the
dispatcher sees only that test's tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.server import Core
from asg_grpc.settings import Settings
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

OPERATOR = "op_test_token"
WAIT = 5.0


def address(seed: str) -> str:
    return p2pkh_address(hashlib.sha256(seed.encode()).digest()[:20])


class Agent:
    """One Work stream, driven step by step by a test."""

    def __init__(self, stub: labeling_pb2_grpc.LabelingServiceStub, token: str) -> None:
        self._outgoing: asyncio.Queue[labeling_pb2.WorkerMessage | None] = asyncio.Queue()
        self.call = stub.Work(self._requests(), metadata=[("authorization", f"Bearer {token}")])
        self.assigned: list[labeling_pb2.Assignment] = []
        self.acked: list[str] = []
        self.errors: list[labeling_pb2.WorkError] = []
        self.notices: list[labeling_pb2.WorkNotice] = []
        self.welcome: labeling_pb2.Welcome | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def _requests(self) -> AsyncIterator[labeling_pb2.WorkerMessage]:
        while (message := await self._outgoing.get()) is not None:
            yield message

    async def hello(
        self, max_in_flight: int = 1, task_types: list[str] | None = None, *, opted_in_only: bool = False
    ) -> None:
        await self._outgoing.put(
            labeling_pb2.WorkerMessage(
                hello=labeling_pb2.Hello(
                    max_in_flight=max_in_flight, task_types=task_types or [], opted_in_only=opted_in_only
                )
            )
        )
        message = await asyncio.wait_for(self.call.read(), WAIT)
        assert message.WhichOneof("kind") == "welcome", message
        self.welcome = message.welcome
        self._reader = asyncio.get_running_loop().create_task(self._pump())

    async def label(self, task_id: str, option: str) -> None:
        await self._outgoing.put(
            labeling_pb2.WorkerMessage(
                labels=labeling_pb2.Labels(items=[labeling_pb2.Label(task_id=task_id, option=option)])
            )
        )

    async def skip(self, task_id: str, reason: str = "unsure") -> None:
        await self._outgoing.put(
            labeling_pb2.WorkerMessage(skip=labeling_pb2.Skip(task_id=task_id, reason=reason))
        )

    async def _pump(self) -> None:
        """Reads every server message in the background (cancelling a read would cancel the RPC)."""
        while (message := await self.call.read()) is not grpc.aio.EOF:
            kind = message.WhichOneof("kind")
            if kind == "assignments":
                self.assigned.extend(message.assignments.items)
            elif kind == "acks":
                self.acked.extend(a.task_id for a in message.acks.items)
            elif kind == "error":
                self.errors.append(message.error)
            elif kind == "notice":
                self.notices.append(message.notice)
            self._changed.set()

    async def read_until(self, predicate: Callable[[Agent], bool], timeout: float = WAIT) -> None:
        """Wait until `predicate(self)` holds, as server messages arrive."""

        async def wait() -> None:
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def assignments(self, count: int) -> list[labeling_pb2.Assignment]:
        await self.read_until(lambda a: len(a.assigned) >= count)
        return self.assigned[:count]

    async def ended(self, timeout: float = WAIT) -> None:
        """Until the core ends the stream; raises the call's AioRpcError when it ended failing."""
        assert self._reader is not None, "hello first"
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def held_after(self, within: float = 0.4) -> int:
        """How many assignments arrived once things had `within` seconds to settle; the only
        way to see that the core sends nothing more."""
        await asyncio.sleep(within)
        return len(self.assigned)

    async def close(self) -> None:
        await self._outgoing.put(None)
        self.call.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class CoreHarness:
    core: Core
    channel: grpc.aio.Channel
    api_key: str = ""
    workers: int = 0
    agents: list[Agent] = field(default_factory=list)

    @property
    def labeling(self) -> labeling_pb2_grpc.LabelingServiceStub:
        return labeling_pb2_grpc.LabelingServiceStub(self.channel)

    @property
    def tasks(self) -> tasks_pb2_grpc.TaskServiceStub:
        return tasks_pb2_grpc.TaskServiceStub(self.channel)

    @property
    def auth(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.api_key}")]

    async def register_worker(
        self, task_types: list[str] | None = None, *, challenge_gateway: bool = False
    ) -> str:
        self.workers += 1
        reply = await self.labeling.RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(
                name=f"w{self.workers}",
                payout_address=address(str(self.workers)),
                task_types=task_types,
                challenge_gateway=challenge_gateway,
            ),
            metadata=[("authorization", f"Bearer {OPERATOR}")],
        )
        return reply.token

    async def agent(self, max_in_flight: int = 1, task_types: list[str] | None = None) -> Agent:
        agent = Agent(self.labeling, await self.register_worker())
        await agent.hello(max_in_flight, task_types)
        self.agents.append(agent)
        return agent

    async def submit(
        self,
        threshold: int = 3,
        options: tuple[str, ...] = ("cat", "dog"),
        task_type: str = "image_classification",
        labor: str | None = None,
    ) -> str:
        reply = await self.tasks.SubmitTask(
            tasks_pb2.SubmitTaskRequest(
                task=tasks_pb2.TaskInput(
                    type=task_type,
                    data_url=f"https://example.com/{uuid.uuid4().hex}.jpg",
                    label_spec=common_pb2.LabelSpec(question="Animal?", options=options),
                    consensus_threshold=threshold,
                    labor=labor,
                )
            ),
            metadata=self.auth,
        )
        return reply.task.task_id

    async def result(self, task_id: str) -> tasks_pb2.TaskResult:
        return await self.tasks.GetTaskResult(
            tasks_pb2.GetTaskResultRequest(task_id=task_id), metadata=self.auth
        )

    async def wait_decided(self, task_id: str) -> tasks_pb2.TaskResult:
        for _ in range(100):
            result = await self.result(task_id)
            if result.decided:
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"{task_id} was not decided")


def stored_options(harness: CoreHarness, task_id: str) -> list[str]:
    """The labels of a task as another connection to the SQLite file sees them."""
    store = SQLiteStore(harness.core.settings.sqlite_path)
    try:
        return [label.option for label in store.task_labels(task_id)]
    finally:
        store.close()


def settings_for(tmp: Path, **overrides: object) -> Settings:
    base = Settings(
        data_dir=tmp,
        grpc_addr="127.0.0.1:0",
        operator_token=OPERATOR,
        sandbox_label_quota=100_000,
    )
    return base.with_overrides(**overrides)


@pytest_asyncio.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[CoreHarness]:
    marker = request.node.get_closest_marker("core_settings")
    core = Core(settings_for(tmp_path, **(marker.kwargs if marker else {})))
    await core.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{core.port}")
    h = CoreHarness(core, channel)
    reply = await billing_pb2_grpc.BillingServiceStub(channel).RegisterCustomer(
        billing_pb2.RegisterCustomerRequest(name="Labeling", email="labeling@example.com")
    )
    h.api_key = reply.api_key
    try:
        yield h
    finally:
        for agent in h.agents:
            await agent.close()
        await channel.close()
        await core.stop()
