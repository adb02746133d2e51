"""JobService: create batch jobs from manifests, follow them, export their results."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import grpc

from asg_grpc.domain import ids
from asg_grpc.domain.errors import DomainError, LimitReached, NotFound, NotReady, QuotaExhausted
from asg_grpc.domain.jobs import Job, JobStatus, validate_job
from asg_grpc.sealing import Sealer, seal_credentials
from asg_grpc.services.callers import Callers
from asg_grpc.services.errors import abort_for
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Jobs
from asg_grpc.v1 import jobs_pb2, jobs_pb2_grpc
from asg_grpc.wire import convert
from asg_grpc.wire.export import export_line
from asg_grpc.wire.urls import check_public_url

EXPORT_PAGE = 5000  # tasks read per store call
EXPORT_CHUNK_BYTES = 256 * 1024  # bytes of JSONL per streamed message, about
IN_FLIGHT = frozenset((JobStatus.PENDING, JobStatus.INGESTING, JobStatus.LABELING))
# Seconds a customer at its jobs-in-flight limit is told to wait: a job takes minutes, not
# milliseconds, and polling faster finds nothing new.
JOBS_RETRY_AFTER = 30
COUNT_PAGE = 200  # jobs read per store call while counting those in flight


class JobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        store: Jobs,
        settings: Settings,
        sealer: Sealer,
        callers: Callers,
        *,
        on_created: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._callers = callers
        self._sealer = sealer
        self._allow_private_urls = settings.allow_private_urls
        self._dev_mode = settings.dev_mode
        self._max_in_flight = settings.max_jobs_in_flight
        # Tells the job runner (when it runs in this process) to look now rather than at its next poll.
        self._on_created = on_created or (lambda: None)

    async def CreateJob(
        self, request: jobs_pb2.CreateJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        customer = self._callers.customer_record(context)
        draft = convert.job_draft(request)
        spec = validate_job(draft, self._dev_mode)
        credentials = draft.s3_credentials
        if spec.s3 is None:
            await check_public_url(
                spec.manifest_url, self._allow_private_urls, "manifest_url", dev_mode=self._dev_mode
            )
        elif credentials is not None and credentials.endpoint_url is not None:
            await check_public_url(
                credentials.endpoint_url,
                self._allow_private_urls,
                "s3_credentials.endpoint_url",
                http_anywhere=True,
            )
        if customer.quota_remaining < spec.consensus_threshold:
            raise QuotaExhausted(
                customer.label_quota, customer.labels_reserved, spec.consensus_threshold, customer.customer_id
            )
        # Counted and created with no await between: one core cannot pass the limit. Two cores on
        # one store may, by the jobs created at the same instant (docs/api.md, Limits).
        if self._jobs_in_flight(customer.customer_id) >= self._max_in_flight:
            raise LimitReached(
                f"a customer may have at most {self._max_in_flight} jobs in flight"
                " (pending, ingesting or labeling)",
                JOBS_RETRY_AFTER,
            )
        now = time.time()
        job_id = ids.new_id("job", now)
        sealed = None if credentials is None else seal_credentials(self._sealer, job_id, credentials)
        job = self._store.create_job(job_id, customer.customer_id, spec, sealed, now)
        self._on_created()
        return convert.job(job)

    def _jobs_in_flight(self, customer_id: str) -> int:
        """The customer's jobs not yet completed or failed, counted up to the limit."""
        count, after = 0, None
        while count < self._max_in_flight:
            page = self._store.list_jobs(customer_id, limit=COUNT_PAGE, after_job_id=after)
            count += sum(job.status in IN_FLIGHT for job in page.jobs)
            if page.next_after is None:
                break
            after = page.next_after
        return count

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return convert.job(self._owned_job(self._callers.customer(context).customer_id, request.job_id))

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        customer_id = self._callers.customer(context).customer_id
        page = self._store.list_jobs(
            customer_id, limit=convert.page_limit(request), after_job_id=request.cursor or None
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[convert.job(j) for j in page.jobs], next_cursor=page.next_after or ""
        )

    async def ExportJob(
        self, request: jobs_pb2.ExportJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.ExportChunk]:
        try:
            job = self._owned_job(self._callers.customer(context).customer_id, request.job_id)
            if job.status is not JobStatus.COMPLETED:
                raise NotReady(_not_exportable(job))
        except DomainError as exc:
            await abort_for(context, exc)
        after = 0
        while True:
            rows = self._store.export_rows(job.job_id, after, EXPORT_PAGE)
            if not rows:
                return
            buffer: list[bytes] = []
            size = 0
            for row in rows:
                line = export_line(row)
                buffer.append(line)
                size += len(line)
                if size >= EXPORT_CHUNK_BYTES:
                    yield jobs_pb2.ExportChunk(jsonl=b"".join(buffer))
                    buffer, size = [], 0
            if buffer:
                yield jobs_pb2.ExportChunk(jsonl=b"".join(buffer))
            after = rows[-1].line

    def _owned_job(self, customer_id: str, job_id: str) -> Job:
        job = self._store.get_job(customer_id, job_id)
        if job is None:
            raise NotFound("job not found")
        return job


def _not_exportable(job: Job) -> str:
    if job.status is JobStatus.FAILED:
        return (
            f"job {job.job_id} failed ({job.failure_reason}) and has no export;"
            f" its tasks are listed by GET /v1/tasks?batch_id={job.job_id}"
        )
    return f"job {job.job_id} is {job.status.value}; the export is available once it is completed"
