"""TaskService: submit and read tasks, scoped to the calling customer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import grpc

from asg_grpc.domain import ids
from asg_grpc.domain.errors import DomainError, NotFound, RateLimited, ValidationError
from asg_grpc.domain.tasks import MAX_BATCH, Task, validate_batch, validate_task
from asg_grpc.services.auth import authenticate, identify
from asg_grpc.services.errors import maps_domain_errors, status_code_for
from asg_grpc.services.group_commit import GroupCommit
from asg_grpc.services.ratelimit import KeyLimits
from asg_grpc.store import Store, Submission, Submitted
from asg_grpc.store.base import KeyOwner
from asg_grpc.v1 import tasks_pb2, tasks_pb2_grpc
from asg_grpc.wire import convert


class TaskService(tasks_pb2_grpc.TaskServiceServicer):
    def __init__(
        self,
        store: Store,
        on_submitted: Callable[[], None] | None = None,
        limits: KeyLimits | None = None,
        on_closed: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self._store = store
        self._limits = limits
        self._submit: GroupCommit[Submission, list[Submitted]] = GroupCommit(
            lambda batch: store.submit(batch, time.time())
        )
        # Tells dispatch that new tasks are in the store (it also polls, for other processes).
        self._on_submitted = on_submitted or (lambda: None)
        # Tells dispatch in this process that tasks were closed (a dispatcher elsewhere learns
        # it at its next commit touching them).
        self._on_closed = on_closed or (lambda task_ids: None)

    @maps_domain_errors
    async def SubmitTask(
        self, request: tasks_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTaskResponse:
        customer_id = authenticate(self._store, context, self._limits)
        spec = validate_task(convert.draft(request.task))
        [submitted] = await self._submit(Submission(customer_id, [spec], batch_id=None))
        if not submitted.replayed:
            self._on_submitted()
        return tasks_pb2.SubmitTaskResponse(task=convert.task(submitted.task), idempotent=submitted.replayed)

    @maps_domain_errors
    async def SubmitTasks(
        self, request: tasks_pb2.SubmitTasksRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitTasksResponse:
        if len(request.submissions) > MAX_BATCH:
            raise ValidationError("submissions", f"must contain at most {MAX_BATCH}")
        outcomes: list[tasks_pb2.SubmissionOutcome | None] = [None] * len(request.submissions)
        accepted: list[tuple[int, Submission]] = []
        # A coalesced call often carries one caller many times: look each key up once. Each
        # submission is one request of its caller, so each counts against its key's rate limit.
        owners: dict[str, tuple[str, KeyOwner] | DomainError] = {}
        for i, item in enumerate(request.submissions):
            try:
                owner = owners.get(item.authorization)
                if owner is None:
                    try:
                        owner = owners[item.authorization] = identify(self._store, item.authorization)
                    except DomainError as exc:
                        owner = owners[item.authorization] = exc
                if isinstance(owner, DomainError):
                    raise owner
                key_hash, key_owner = owner
                if self._limits is not None:
                    self._limits.check(key_hash, key_owner.tier)
                customer_id = key_owner.customer_id
                spec = validate_task(convert.draft(item.task))
            except DomainError as exc:
                outcomes[i] = _refused(exc)
                continue
            accepted.append((i, Submission(customer_id, [spec], batch_id=None)))
        results = self._store.submit([s for _, s in accepted], time.time()) if accepted else []
        for (i, _), result in zip(accepted, results, strict=True):
            if isinstance(result, DomainError):
                outcomes[i] = _refused(result)
                continue
            [submitted] = result
            outcomes[i] = tasks_pb2.SubmissionOutcome(
                accepted=tasks_pb2.SubmitTaskResponse(
                    task=convert.task(submitted.task), idempotent=submitted.replayed
                )
            )
        if accepted:
            self._on_submitted()
        assert all(o is not None for o in outcomes), "every submission has an outcome"
        return tasks_pb2.SubmitTasksResponse(outcomes=outcomes)  # type: ignore[arg-type]

    @maps_domain_errors
    async def SubmitBatch(
        self, request: tasks_pb2.SubmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.SubmitBatchResponse:
        customer_id = authenticate(self._store, context, self._limits)
        callback_url = request.callback_url if request.HasField("callback_url") else None
        specs = validate_batch([convert.draft(t) for t in request.tasks], callback_url)
        batch_id = ids.new_id("bat")
        submitted = await self._submit(Submission(customer_id, specs, batch_id=batch_id))
        self._on_submitted()
        return tasks_pb2.SubmitBatchResponse(
            batch_id=batch_id,
            task_count=len(submitted),
            task_ids=[s.task.task_id for s in submitted],
        )

    @maps_domain_errors
    async def GetTask(
        self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.Task:
        customer_id = authenticate(self._store, context, self._limits)
        return convert.task(self._owned_task(customer_id, request.task_id))

    @maps_domain_errors
    async def GetTaskResult(
        self, request: tasks_pb2.GetTaskResultRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskResult:
        customer_id = authenticate(self._store, context, self._limits)
        task = self._owned_task(customer_id, request.task_id)
        labels = self._store.task_labels(task.task_id) if task.status.decided else []
        return convert.task_result(task, labels)

    @maps_domain_errors
    async def ListTasks(
        self, request: tasks_pb2.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ListTasksResponse:
        customer_id = authenticate(self._store, context, self._limits)
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

    @maps_domain_errors
    async def CancelTask(
        self, request: tasks_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.TaskResult:
        customer_id = authenticate(self._store, context, self._limits)
        task = self._store.cancel_task(customer_id, request.task_id, time.time())
        self._on_closed([task.task_id])
        return convert.task_result(task, self._store.task_labels(task.task_id))

    def _owned_task(self, customer_id: str, task_id: str) -> Task:
        task = self._store.get_task(customer_id, task_id)
        if task is None:
            raise NotFound("task not found")
        return task


def _refused(exc: DomainError) -> tasks_pb2.SubmissionOutcome:
    code = status_code_for(exc)
    error = tasks_pb2.CallError(code=code.value[0], message=exc.message)
    if isinstance(exc, RateLimited):
        error.retry_after_seconds = exc.retry_after
    return tasks_pb2.SubmissionOutcome(error=error)
