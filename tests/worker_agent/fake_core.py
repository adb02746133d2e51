"""A scriptable LabelingService on a real `grpc.aio` server: the real protocol over a real socket.

It stands in for the core while the core's LabelingService is being written; it behaves like
the contract says (welcome, assignments up to the granted max_in_flight, acks once a label is
"stored", WorkError for refused labels, no assignments after Drain) and records everything
the agent sends, so tests can assert on the wire rather than on the agent's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc

from asg_grpc.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

TOKEN = "wk_test_token"
LEASE_SECONDS = 60
CAT_DOG = ("cat", "dog")


def assignment(
    n: int | str,
    task_type: str = "image_classification",
    options: Iterable[str] = CAT_DOG,
    data_url: str | None = None,
    question: str = "Which animal?",
) -> labeling_pb2.Assignment:
    return labeling_pb2.Assignment(
        task_id=f"tsk_{n}",
        task_type=task_type,
        data_url=data_url or f"https://cdn.example.com/{n}.jpg",
        label_spec=common_pb2.LabelSpec(question=question, options=list(options)),
    )


class FakeLabeling(labeling_pb2_grpc.LabelingServiceServicer):
    def __init__(
        self,
        tasks: Iterable[labeling_pb2.Assignment] = (),
        *,
        token: str = TOKEN,
        grant_cap: int = 256,
        refuse: dict[str, str] | None = None,
    ) -> None:
        self.tasks: deque[labeling_pb2.Assignment] = deque(tasks)
        self.token = token
        self.grant_cap = grant_cap
        self.refuse = dict(refuse or {})  # task_id → WorkError code
        self.calls = 0
        self.hellos: list[labeling_pb2.Hello] = []
        self.received: list[labeling_pb2.WorkerMessage] = []
        self.labels: dict[str, str] = {}
        self.skips: dict[str, str] = {}
        self.assigned: list[str] = []
        self.open_streams = 0
        self.ack = True  # False: labels are "stored" but never acknowledged
        self._changed = asyncio.Event()
        self._wakeups: list[asyncio.Event] = []
        self._streams: list[_Stream] = []

    # -- what tests read ------------------------------------------------------------------

    def kinds(self) -> list[str]:
        return [str(m.WhichOneof("kind")) for m in self.received]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    def label_messages(self) -> list[labeling_pb2.Labels]:
        return [m.labels for m in self.received if m.WhichOneof("kind") == "labels"]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> None:
        """Wait until `condition()` holds; the timeout only guards against a hung test."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def add_tasks(self, *items: labeling_pb2.Assignment) -> None:
        self.tasks.extend(items)
        for wake in self._wakeups:
            wake.set()

    def expire(self, task_id: str) -> None:
        """Take a held task back, as the core does when a lease runs out."""
        for stream in self._streams:
            if stream.held.pop(task_id, None) is not None:
                error = labeling_pb2.WorkError(task_id=task_id, code="lease_expired", message="lease expired")
                stream.out.put_nowait(labeling_pb2.ServerMessage(error=error))

    # -- the service ----------------------------------------------------------------------

    async def Work(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        self.calls += 1
        self._touch()
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown worker token")
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello first")
        self.received.append(first)
        self.hellos.append(first.hello)
        self._touch()
        stream = _Stream(self, context, min(max(first.hello.max_in_flight, 1), self.grant_cap))
        self._wakeups.append(stream.wake)
        self._streams.append(stream)
        self.open_streams += 1
        try:
            await stream.serve()
        finally:
            self.open_streams -= 1
            self._wakeups.remove(stream.wake)
            self._streams.remove(stream)
            self.tasks.extendleft(stream.held.values())  # like the core: a closed stream gives its slots back
            self._touch()

    def _touch(self) -> None:
        self._changed.set()


class _Stream:
    def __init__(self, core: FakeLabeling, context: grpc.aio.ServicerContext, granted: int) -> None:
        self.core = core
        self.context = context
        self.granted = granted
        self.held: dict[str, labeling_pb2.Assignment] = {}
        self.draining = False
        self.out: asyncio.Queue[labeling_pb2.ServerMessage] = asyncio.Queue()
        self.wake = asyncio.Event()

    async def serve(self) -> None:
        welcome = labeling_pb2.Welcome(
            worker_id="wkr_fake", max_in_flight=self.granted, lease_seconds=LEASE_SECONDS
        )
        self.out.put_nowait(labeling_pb2.ServerMessage(welcome=welcome))
        self.top_up()
        writer = asyncio.create_task(self.write_loop())
        feeder = asyncio.create_task(self.feed_loop())
        try:
            await self.read_loop()
            await self.out.join()  # the last acks reach the agent before the stream ends
        finally:
            for task in (writer, feeder):
                task.cancel()
            for task in (writer, feeder):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def read_loop(self) -> None:
        while (message := await self.context.read()) is not grpc.aio.EOF:
            self.core.received.append(message)
            kind = message.WhichOneof("kind")
            if kind == "labels":
                self.on_labels(message.labels.items)
            elif kind == "skip":
                self.held.pop(message.skip.task_id, None)
                self.core.skips[message.skip.task_id] = message.skip.reason
            elif kind == "drain":
                self.draining = True
            self.top_up()
            self.core._touch()

    def on_labels(self, items: Iterable[labeling_pb2.Label]) -> None:
        acks = []
        for label in items:
            code = self.core.refuse.get(label.task_id)
            if code is None and label.task_id not in self.held:
                code = "not_held"
            if code is not None:
                error = labeling_pb2.WorkError(task_id=label.task_id, code=code, message=f"refused: {code}")
                self.out.put_nowait(labeling_pb2.ServerMessage(error=error))
                self.held.pop(label.task_id, None)
                continue
            self.held.pop(label.task_id, None)
            self.core.labels[label.task_id] = label.option
            acks.append(labeling_pb2.Ack(task_id=label.task_id))
        if acks and self.core.ack:
            self.out.put_nowait(labeling_pb2.ServerMessage(acks=labeling_pb2.Acks(items=acks)))

    def top_up(self) -> None:
        batch = []
        while not self.draining and len(self.held) < self.granted and self.core.tasks:
            task = labeling_pb2.Assignment()
            task.CopyFrom(self.core.tasks.popleft())
            task.lease_deadline.FromSeconds(int(time.time()) + LEASE_SECONDS)
            self.held[task.task_id] = task
            self.core.assigned.append(task.task_id)
            batch.append(task)
        if batch:
            self.out.put_nowait(labeling_pb2.ServerMessage(assignments=labeling_pb2.Assignments(items=batch)))

    async def feed_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            self.top_up()

    async def write_loop(self) -> None:
        while True:
            message = await self.out.get()
            await self.context.write(message)
            self.out.task_done()


async def start(
    servicer: FakeLabeling, port: int = 0, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.aio.Server, int]:
    """Serve `servicer` on 127.0.0.1 (port 0: a free one); returns the server and its port."""
    server = grpc.aio.server()
    labeling_pb2_grpc.add_LabelingServiceServicer_to_server(servicer, server)
    address = f"127.0.0.1:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    await server.start()
    return server, bound


@contextlib.asynccontextmanager
async def serving(servicer: FakeLabeling, port: int = 0) -> AsyncIterator[int]:
    """The fake core on a real socket for the duration of the block; yields the port."""
    server, bound = await start(servicer, port)
    try:
        yield bound
    finally:
        await server.stop(0)
