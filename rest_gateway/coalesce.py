"""Concurrent single submissions, sent to the core together (TaskService.SubmitTasks).

Each POST /v1/tasks waits a fraction of a millisecond for others; then one gRPC call carries
them all, each with its own caller's credentials, and each request gets back its own outcome.
One call instead of many saves most of the per-call gRPC cost on both sides, which is where
a single submission spends most of its time.
"""

from __future__ import annotations

import asyncio

import grpc

from asg_grpc.v1 import tasks_pb2, tasks_pb2_grpc
from rest_gateway.errors import CoreRefused

Waiter = tuple[tasks_pb2.CallerSubmission, "asyncio.Future[tasks_pb2.SubmitTaskResponse]"]


class SubmitCoalescer:
    def __init__(
        self,
        stub: tasks_pb2_grpc.TaskServiceStub,
        timeout: float,
        *,
        linger: float = 0.0005,
        max_batch: int = 256,
    ) -> None:
        self._stub = stub
        self._timeout = timeout
        self._linger = linger
        self._max_batch = max_batch
        self._pending: list[Waiter] = []
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(
        self, authorization: str | None, task: tasks_pb2.TaskInput
    ) -> tasks_pb2.SubmitTaskResponse:
        """What SubmitTask would answer; raises CoreRefused (or AioRpcError) as it would fail."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tasks_pb2.SubmitTaskResponse] = loop.create_future()
        if not self._pending:
            loop.call_later(self._linger, self._send)
        self._pending.append(
            (tasks_pb2.CallerSubmission(authorization=authorization or "", task=task), future)
        )
        if len(self._pending) >= self._max_batch:
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
                    code = _CODES.get(outcome.error.code, grpc.StatusCode.UNKNOWN)
                    error = outcome.error
                    future.set_exception(CoreRefused(code, error.message, error.retry_after_seconds))
        except BaseException as exc:  # the call failed (or this task was cancelled): so does each request
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise


_CODES = {code.value[0]: code for code in grpc.StatusCode}
