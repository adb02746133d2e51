"""Tasks: submit (single and batch), status, result, list."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from asg_common import rest_json
from asg_grpc.v1 import tasks_pb2
from rest_gateway import decode, models
from rest_gateway.core import Core, core
from rest_gateway.errors import BadRequest
from rest_gateway.openapi import AUTHED, BODY, body, errors
from rest_gateway.params import Cursor, PageLimit
from rest_gateway.responses import json
from rest_gateway.routes._declare import by_id

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=errors(*AUTHED))

SUBMIT_ERRORS = errors(*BODY, 403, 409)


@router.post(
    "",
    status_code=202,
    openapi_extra=body(models.TaskInput),
    responses={
        **SUBMIT_ERRORS,
        200: {"model": models.Submitted, "description": "The idempotency key's earlier task"},
    },
    response_model=models.Submitted,
)
async def submit_task(request: Request) -> Response:
    task = (await decode.TASK.read(request)).to_proto()
    reply = await core(request).submissions.submit(request.headers.get("authorization"), task)
    body = rest_json.submitted(reply.task)
    if reply.idempotent:
        body["idempotent"] = True
        return json(body, 200)
    return json(body, 202)


# The hot path as a plain Starlette route, which app.py puts before every other: the same
# endpoint, without FastAPI's per-request dependency solving and route selection (~10 µs of
# ~80 per submission, docs/benchmarks.md, issue 17). The route above stays the one the OpenAPI
# documents; this one answers every POST /v1/tasks, and a GET goes on to list_tasks.
class _PlainRoute(Route):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self  # what the metrics count it under; FastAPI's router sets it only for its own
        await super().handle(scope, receive, send)


SUBMIT = _PlainRoute(router.prefix, submit_task, methods=["POST"], name="submit_task")


@router.post(
    "/batch",
    status_code=202,
    openapi_extra=body(models.BatchInput),
    responses=SUBMIT_ERRORS,
    response_model=models.BatchAccepted,
)
async def submit_batch(request: Request, call: Core) -> Response:
    message = (await decode.BATCH.read(request)).to_proto()
    reply = await call(call.client.tasks.SubmitBatch, message)
    return json(
        {
            "batch_id": reply.batch_id,
            "task_count": reply.task_count,
            "status": "accepted",
            "task_ids": list(reply.task_ids),
        },
        202,
    )


by_id(
    router,
    "get_batch",
    path="/batch/{batch_id}",
    rpc=lambda client: client.tasks.GetBatchStatus,
    request=tasks_pb2.GetBatchStatusRequest,
    render=rest_json.batch_status,
    response_model=models.BatchStatus,
    description="Declared before `/{task_id}` so that a batch id is never read as a task id.",
)


@router.get(
    "",
    response_model=models.TaskPage,
)
async def list_tasks(
    call: Core,
    status: str | None = Query(None, description=f"One of {', '.join(rest_json.STATUS_VALUES)}"),
    batch_id: str | None = None,
    limit: PageLimit = None,
    cursor: Cursor = None,
) -> Response:
    if status is not None and status not in rest_json.STATUS_VALUES:
        raise BadRequest("status", f"must be one of {', '.join(rest_json.STATUS_VALUES)}")
    reply = await call(
        call.client.tasks.ListTasks,
        tasks_pb2.ListTasksRequest(
            status=rest_json.STATUS_VALUES[status] if status else None,  # type: ignore[arg-type]
            batch_id=batch_id,
            limit=limit,
            cursor=cursor or "",
        ),
    )
    return json({"tasks": [rest_json.task(t) for t in reply.tasks], "next_cursor": reply.next_cursor or None})


by_id(
    router,
    "get_task",
    path="/{task_id}",
    rpc=lambda client: client.tasks.GetTask,
    request=tasks_pb2.GetTaskRequest,
    render=rest_json.task,
    response_model=models.Task,
)
by_id(
    router,
    "cancel_task",
    method="DELETE",
    path="/{task_id}",
    rpc=lambda client: client.tasks.CancelTask,
    request=tasks_pb2.CancelTaskRequest,
    render=rest_json.result,
    response_model=models.TaskResult,
    refusals=(404, 409),
)


@router.get(
    "/{task_id}/result",
    responses={**errors(404), 202: {"description": "Not decided yet"}},
    response_model=models.TaskResult,
)
async def get_result(task_id: str, call: Core) -> Response:
    reply = await call(call.client.tasks.GetTaskResult, tasks_pb2.GetTaskResultRequest(task_id=task_id))
    if reply.decided:
        return json(rest_json.result(reply))
    return json(rest_json.pending_result(reply), 202)
