"""Tasks: submit (single and batch), status, result, list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import tasks_pb2
from rest_gateway import decode
from rest_gateway.core import call_metadata, core
from rest_gateway.errors import BadRequest
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post("", status_code=202)
async def submit_task(request: Request) -> Response:
    task = decode.task_input(await decode.json_object(request, decode.SMALL_BODY))
    reply = await core(request).submissions.submit(request.headers.get("authorization"), task)
    body = rest_json.submitted(reply.task)
    if reply.idempotent:
        body["idempotent"] = True
        return json(body, 200)
    return json(body, 202)


@router.post("/batch", status_code=202)
async def submit_batch(request: Request) -> Response:
    message = decode.submit_batch(await decode.json_object(request, decode.BATCH_BODY))
    client = core(request)
    reply = await client.tasks.SubmitBatch(message, metadata=call_metadata(request), timeout=client.timeout)
    return json(
        {
            "batch_id": reply.batch_id,
            "task_count": reply.task_count,
            "status": "accepted",
            "task_ids": list(reply.task_ids),
        },
        202,
    )


@router.get("")
async def list_tasks(
    request: Request,
    status: str | None = None,
    batch_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Response:
    if status is not None and status not in rest_json.STATUS_VALUES:
        raise BadRequest("status", f"must be one of {', '.join(rest_json.STATUS_VALUES)}")
    if limit is not None and not 0 <= limit < 2**31:  # what the int32 field can carry
        raise BadRequest("limit", "is out of range")
    client = core(request)
    reply = await client.tasks.ListTasks(
        tasks_pb2.ListTasksRequest(
            status=rest_json.STATUS_VALUES[status] if status else None,  # type: ignore[arg-type]
            batch_id=batch_id,
            limit=limit,
            cursor=cursor or "",
        ),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json({"tasks": [rest_json.task(t) for t in reply.tasks], "next_cursor": reply.next_cursor or None})


@router.get("/{task_id}")
async def get_task(request: Request, task_id: str) -> Response:
    client = core(request)
    reply = await client.tasks.GetTask(
        tasks_pb2.GetTaskRequest(task_id=task_id),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(rest_json.task(reply))


@router.delete("/{task_id}")
async def cancel_task(request: Request, task_id: str) -> Response:
    client = core(request)
    reply = await client.tasks.CancelTask(
        tasks_pb2.CancelTaskRequest(task_id=task_id),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(rest_json.result(reply))


@router.get("/{task_id}/result")
async def get_result(request: Request, task_id: str) -> Response:
    client = core(request)
    reply = await client.tasks.GetTaskResult(
        tasks_pb2.GetTaskResultRequest(task_id=task_id),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    if reply.decided:
        return json(rest_json.result(reply))
    return json(rest_json.pending_result(reply), 202)
