"""TaskService: submit and read tasks, scoped to the calling customer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import grpc

from asg_grpc.domain import ids
from asg_grpc.domain.errors import DomainError, NotFound, ValidationError
from asg_grpc.domain.tasks import (
    DEFAULT_CONSENSUS_METHOD,
    MAX_BATCH,
    Task,
    validate_batch,
    validate_task,
)
from asg_grpc.services.callers import Callers, CustomerCaller
from asg_grpc.services.errors import refusal_for
from asg_grpc.services.group_commit import GroupCommit
from asg_grpc.store import Submission, Submitted
from asg_grpc.store.areas import Tasks
from asg_grpc.store.offload import threads_of
from asg_grpc.v1 import tasks_pb2, tasks_pb2_grpc
from asg_grpc.wire import convert


class TaskService(tasks_pb2_grpc.TaskServiceServicer):
    def __init__(
        self,
        store: Tasks,
        callers: Callers,
        on_submitted: Callable[[], None] | None = None,
        on_closed: Callable[[Sequence[str]], None] | None = None,
        default_method: str = DEFAULT_CONSENSUS_METHOD,
        *,
        dev_mode: bool = False,
    ) -> None:
        self._store = store
        # For tasks that name no consensus_method: the deployment's ASG_CONSENSUS_METHOD.
        self._default_method = default_method
        self._callers = callers
        # Settings.dev_mode: callback URLs may be http:// to loopback.
        self._dev_mode = dev_mode
        # The one way into the store for every submission, single, carried or batch; on a
        # store with threads of its own, each commit runs there (asg_grpc/store/offload.py).
        self._submit: GroupCommit[Submission, list[Submitted]] = GroupCommit(
            lambda batch: store.submit(batch, time.time()), offload=threads_of(store)
        )
        # Tells dispatch that new tasks are in the store (it also polls, for other processes).
        self._on_submitted = on_submitted or (lambda: None)
        # Tells dispatch in this process that tasks were closed (a dispatcher elsewhere learns
        # it at its next commit touching them).
        self._on_closed = on_closed or (lambda task_ids: None)

    async def SubmitTask(
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTaskResponse:
        caller = self._callers.customer(context)
        spec = validate_task(
            convert.draft(request.task), default_method=self._method(caller), dev_mode=self._dev_mode
        )
        [submitted] = await self._submit(Submission(caller.customer_id, [spec], batch_id=None))
        self._notify([submitted])
        return _accepted(submitted)

    async def SubmitTasks(
        self, request: tasks_pb2.SubmitTasksRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTasksResponse:
        if len(request.submissions) > MAX_BATCH:
            raise ValidationError("submissions", f"must contain at most {MAX_BATCH}")
        # A call often carries one caller many times: look each key up once. Each submission
        # is one request of its caller, so each counts against its key's rate limit.
        owners: dict[str, CustomerCaller | DomainError] = {}
        prepared = [self._prepare(item, owners) for item in request.submissions]
        ready = [p for p in prepared if isinstance(p, Submission)]
        stored = iter(await self._submit.many(ready))
        outcomes = []
        accepted: list[Submitted] = []
        for item in prepared:
            result = next(stored) if isinstance(item, Submission) else item
            if isinstance(result, DomainError):
                outcomes.append(tasks_pb2.SubmitOutcome(refused=refusal_for(result)))
            elif isinstance(result, BaseException):  # a bug, or the whole commit failed
                raise result
            else:
                [submitted] = result  # a carried submission is one task
                accepted.append(submitted)
                outcomes.append(tasks_pb2.SubmitOutcome(accepted=_accepted(submitted)))
        self._notify(accepted)
        return tasks_pb2.SubmitTasksResponse(outcomes=outcomes)

    def _prepare(
        self, item: tasks_pb2.SubmitTaskRequest, owners: dict[str, CustomerCaller | DomainError]
    ) -> Submission | DomainError:
        """What SubmitTask would store for this caller, or why it would refuse before storing."""
        try:
            owner = owners.get(item.authorization)
            if owner is None:
                try:
                    owner = owners[item.authorization] = self._callers.customer_of(item.authorization)
                except DomainError as exc:
                    owner = owners[item.authorization] = exc
            if isinstance(owner, DomainError):
                raise owner
            self._callers.spend(owner)
            spec = validate_task(
                convert.draft(item.task), default_method=self._method(owner), dev_mode=self._dev_mode
            )
        except DomainError as exc:
            return exc
        return Submission(owner.customer_id, [spec], batch_id=None)

    async def SubmitBatch(
        self, request: tasks_pb2.SubmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitBatchResponse:
        caller = self._callers.customer(context)
        callback_url = request.callback_url if request.HasField("callback_url") else None
        drafts = [convert.draft(t) for t in request.tasks]
        labor = request.labor if request.HasField("labor") else None
        specs = validate_batch(drafts, callback_url, self._method(caller), self._dev_mode, labor)
        batch_id = ids.new_id("bat")
        submitted = await self._submit(Submission(caller.customer_id, specs, batch_id=batch_id))
        self._notify(submitted)
        return tasks_pb2.SubmitBatchResponse(
            batch_id=batch_id,
            task_count=len(submitted),
            task_ids=[s.task.task_id for s in submitted],
        )

    def _method(self, caller: CustomerCaller) -> str:
        """For the caller's tasks that name no consensus_method: the customer's own default,
        else the deployment's."""
        return caller.consensus_method or self._default_method

    def _notify(self, submitted: Sequence[Submitted]) -> None:
        """Wake dispatch when any task is new (a replay stored nothing)."""
        if not all(s.replayed for s in submitted):
            self._on_submitted()

    async def GetTask(
        self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.Task:
        customer_id = self._callers.customer(context).customer_id
        return convert.task(self._owned_task(customer_id, request.task_id))

    async def GetTaskResult(
        self, request: tasks_pb2.GetTaskResultRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskResult:
        customer_id = self._callers.customer(context).customer_id
        task = self._owned_task(customer_id, request.task_id)
        labels = self._store.task_labels(task.task_id) if task.status.decided else []
        return convert.task_result(task, labels)

    async def ListTasks(
        self, request: tasks_pb2.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ListTasksResponse:
        customer_id = self._callers.customer(context).customer_id
        limit = convert.page_limit(request)
        page = self._store.list_tasks(
            customer_id,
            status=(convert.STATUS_FROM_PB.get(request.status) if request.HasField("status") else None),
            batch_id=request.batch_id if request.HasField("batch_id") else None,
            limit=limit,
            # The cursor is the last task id of the previous page: opaque, and it says nothing
            # the customer did not know (unlike a row number, which counts everyone's tasks).
            after_task_id=request.cursor or None,
        )
        return tasks_pb2.ListTasksResponse(
            tasks=[convert.task(t) for t in page.tasks],
            next_cursor=page.next_after or "",
        )

    async def CancelTask(
        self, request: tasks_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskResult:
        customer_id = self._callers.customer(context).customer_id
        task = self._store.cancel_task(customer_id, request.task_id, time.time())
        self._on_closed([task.task_id])
        return convert.task_result(task, self._store.task_labels(task.task_id))

    async def GetBatchStatus(
        self, request: tasks_pb2.GetBatchStatusRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.BatchStatus:
        customer_id = self._callers.customer(context).customer_id
        progress = self._store.batch_progress(customer_id, request.batch_id)
        if progress is None:
            raise NotFound("batch not found")
        return convert.batch_status(progress)

    def _owned_task(self, customer_id: str, task_id: str) -> Task:
        task = self._store.get_task(customer_id, task_id)
        if task is None:
            raise NotFound("task not found")
        return task


def _accepted(submitted: Submitted) -> tasks_pb2.SubmitTaskResponse:
    return tasks_pb2.SubmitTaskResponse(task=convert.task(submitted.task), idempotent=submitted.replayed)
