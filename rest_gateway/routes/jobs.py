"""Batch jobs: create from a manifest, follow, export the results as JSONL."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from asg_common import rest_json
from asg_grpc.v1 import jobs_pb2
from rest_gateway import decode
from rest_gateway.core import call_metadata, core
from rest_gateway.errors import BadRequest
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202)
async def create_job(request: Request) -> Response:
    message = decode.create_job(await decode.json_object(request, decode.SMALL_BODY))
    client = core(request)
    reply = await client.jobs.CreateJob(message, metadata=call_metadata(request), timeout=client.timeout)
    return json(rest_json.job_created(reply), 202)


@router.get("")
async def list_jobs(request: Request, limit: int | None = None, cursor: str | None = None) -> Response:
    """Summaries, newest first: `counts` has no verified/settled/failed here (GET one job)."""
    if limit is not None and not 0 <= limit < 2**31:  # what the int32 field can carry
        raise BadRequest("limit", "is out of range")
    client = core(request)
    reply = await client.jobs.ListJobs(
        jobs_pb2.ListJobsRequest(limit=limit, cursor=cursor or ""),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(
        {"jobs": [rest_json.job_summary(j) for j in reply.jobs], "next_cursor": reply.next_cursor or None}
    )


@router.get("/{job_id}")
async def get_job(request: Request, job_id: str) -> Response:
    client = core(request)
    reply = await client.jobs.GetJob(
        jobs_pb2.GetJobRequest(job_id=job_id), metadata=call_metadata(request), timeout=client.timeout
    )
    return json(rest_json.job(reply))


@router.get("/{job_id}/export")
async def export_job(request: Request, job_id: str) -> Response:
    """Streamed as the core produces it. The first chunk is awaited before the response starts,
    so a refusal (409 before completion, 404) still gets its own status code."""
    call = core(request).jobs.ExportJob(
        jobs_pb2.ExportJobRequest(job_id=job_id), metadata=call_metadata(request)
    )
    stream = call.__aiter__()
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first.jsonl
                async for chunk in stream:
                    yield chunk.jsonl
        finally:
            call.cancel()  # the client went away: stop the core's side too

    return StreamingResponse(body(), media_type="application/x-ndjson")
