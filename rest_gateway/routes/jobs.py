"""Batch jobs: create from a manifest, follow, export the results as JSONL."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from asg_common import rest_json
from asg_grpc.v1 import jobs_pb2
from rest_gateway import decode, models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, errors
from rest_gateway.params import Cursor, PageLimit
from rest_gateway.responses import json
from rest_gateway.routes._declare import by_id, post_body

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(*AUTHED))


post_body(
    router,
    "create_job",
    reader=decode.JOB,
    rpc=lambda client: client.jobs.CreateJob,
    render=rest_json.job_created,
    status_code=202,
    response_model=models.JobCreated,
    refusals=(403,),
)


@router.get(
    "",
    response_model=models.JobPage,
)
async def list_jobs(call: Core, limit: PageLimit = None, cursor: Cursor = None) -> Response:
    """Summaries, newest first: `counts` has no verified/settled/failed here (GET one job)."""
    reply = await call(call.client.jobs.ListJobs, jobs_pb2.ListJobsRequest(limit=limit, cursor=cursor or ""))
    return json(
        {"jobs": [rest_json.job_summary(j) for j in reply.jobs], "next_cursor": reply.next_cursor or None}
    )


by_id(
    router,
    "get_job",
    path="/{job_id}",
    rpc=lambda client: client.jobs.GetJob,
    request=jobs_pb2.GetJobRequest,
    render=rest_json.job,
    response_model=models.Job,
)


@router.get(
    "/{job_id}/export",
    responses={**errors(404, 409), 200: {"content": {"application/x-ndjson": {}}}},
)
async def export_job(job_id: str, call: Core) -> Response:
    """Streamed as the core produces it. The first chunk is awaited before the response starts,
    so a refusal (409 before completion, 404) still gets its own status code."""
    stream_call = call.client.jobs.ExportJob(jobs_pb2.ExportJobRequest(job_id=job_id), metadata=call.metadata)
    stream = stream_call.__aiter__()
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
            stream_call.cancel()  # the client went away: stop the core's side too

    return StreamingResponse(body(), media_type="application/x-ndjson")
