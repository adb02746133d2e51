"""Concurrent POST /v1/tasks carried to the core in one TaskService.SubmitTasks call.

Transport only. Each request waits a fraction of a millisecond for others; then one gRPC call
carries all their SubmitTaskRequests, each with its own caller's credentials, and each request
gets back its own outcome: the core's answer, or the core's Refusal raised as `Refused` for the
gateway's error table. It checks, counts and refuses nothing itself: that is the core's (which
commits everything it is sent in one group commit). One call instead of many saves most of
the per-call gRPC cost on both sides, which is where a single submission spends most of its
time (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio

from asg_grpc.v1 import tasks_pb2, tasks_pb2_grpc
from rest_gateway.errors import Refused

Waiter = tuple[tasks_pb2.SubmitTaskRequest, "asyncio.Future[tasks_pb2.SubmitTaskResponse]"]


class SubmitMultiplexer:
    def __init__(
        self,
        stub: tasks_pb2_grpc.TaskServiceStub,
        timeout: float,
        *,
        max_per_call: int,
        linger: float = 0.0005,
    ) -> None:
        self._stub = stub
        self._timeout = timeout
        # A call must fit in one gRPC message: the caller derives this from the message limit.
        self._max_per_call = max_per_call
        self._linger = linger
        self._pending: list[Waiter] = []
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(
        self, authorization: str | None, task: tasks_pb2.TaskInput
    ) -> tasks_pb2.SubmitTaskResponse:
        """What SubmitTask would answer; raises Refused (or AioRpcError) as it would fail."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tasks_pb2.SubmitTaskResponse] = loop.create_future()
        if not self._pending:
            loop.call_later(self._linger, self._send)
        self._pending.append(
            (tasks_pb2.SubmitTaskRequest(authorization=authorization or "", task=task), future)
        )
        if len(self._pending) >= self._max_per_call:
            self._send()
        return await future

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            call = asyncio.get_running_loop().create_task(self._call(pending))
            self._calls.add(call)  # keep a reference until it is done
            call.add_done_callback(self._calls.discard)

    async def _call(self, pending: list[Waiter]) -> None:
        try:
            reply = await self._stub.SubmitTasks(
                tasks_pb2.SubmitTasksRequest(submissions=[item for item, _ in pending]), timeout=self._timeout
            )
            if len(reply.outcomes) != len(pending):  # never hand one caller another's answer
                raise RuntimeError(f"{len(reply.outcomes)} outcomes for {len(pending)} submissions")
            for (_, future), outcome in zip(pending, reply.outcomes, strict=True):
                if future.done():  # the HTTP client went away
                    continue
                if outcome.WhichOneof("outcome") == "accepted":
                    future.set_result(outcome.accepted)
                else:
                    future.set_exception(Refused(outcome.refused))
        except BaseException as exc:  # the call failed (or this task was cancelled): so does each request
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
