"""The job runner: reads manifests into tasks, and completes jobs whose tasks are all decided.

Runs where dispatch runs (one core per store), as two kinds of loop on the core's event loop:

* ingestion, for each pending or ingesting job (at most `ingest_concurrency` at once): the
  manifest is read from where the last committed chunk ended, parsed line by line, and
  committed every CHUNK_LINES lines in one store transaction together with the progress (line
  number and byte offset). A core killed mid-job resumes at the last commit: no line is lost and
  none becomes two tasks.
* the watcher: a labeling job whose every task is decided becomes completed (and its event is
  written in the same transaction).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from asg_grpc.background import stop_tasks, wait_event
from asg_grpc.domain.errors import DomainError, ValidationError
from asg_grpc.domain.jobs import JobSpec, ManifestItem, S3Credentials, parse_item
from asg_grpc.jobs.lines import LineSplitter
from asg_grpc.jobs.manifests import ManifestReader, ManifestUnavailable, ManifestUnreadable
from asg_grpc.sealing import SealBroken, Sealer, open_credentials
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Jobs
from asg_grpc.store.job_records import IngestChunk, JobWork

log = logging.getLogger("asg.jobs")

CHUNK_LINES = 1000
POLL_INTERVAL = 1.0  # seconds between looks for new jobs and finished ones, unless woken
ATTEMPTS = 4  # reads of a manifest before a failure that may pass fails the job
RETRY_DELAYS = (1.0, 5.0, 15.0)
ERROR_BACKOFF = 1.0


class JobRunner:
    """`start()` once, `stop()` once; `wake()` after a job is created."""

    def __init__(
        self,
        store: Jobs,
        settings: Settings,
        sealer: Sealer,
        on_submitted: Callable[[], None],
        *,
        poll_interval: float = POLL_INTERVAL,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._on_submitted = on_submitted
        self._poll = poll_interval
        self._retry_delays = retry_delays
        self._concurrency = settings.ingest_concurrency
        self._max_line = settings.manifest_max_line_bytes
        self._reader = ManifestReader(
            allow_private_urls=settings.allow_private_urls,
            dev_mode=settings.dev_mode,
            max_bytes=settings.manifest_max_bytes,
        )
        self._woken = asyncio.Event()
        self._ingesting: dict[str, asyncio.Task[None]] = {}
        # job id → the first line whose task was still open at the last look
        self._open_from: dict[str, int] = {}
        # job id → unexpected exceptions while ingesting it (see _ingest)
        self._unexpected: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._woken.set()

    async def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="jobs")

    async def stop(self) -> None:
        """Stop reading; what was committed stays, the rest is read again after restart."""
        await stop_tasks(self._loop_task, *self._ingesting.values())
        await self._reader.close()

    async def _run(self) -> None:
        while True:
            try:
                self._start_ingestions()
                self._complete_finished()
            except Exception:
                log.exception("the job loop failed; retrying")
                await asyncio.sleep(ERROR_BACKOFF)
            await wait_event(self._woken, self._poll)
            self._woken.clear()

    def _start_ingestions(self) -> None:
        for job in self._store.jobs_to_ingest():
            if len(self._ingesting) >= self._concurrency:
                return
            if job.job_id in self._ingesting:
                continue
            task = asyncio.get_running_loop().create_task(self._ingest(job), name=f"ingest-{job.job_id}")
            self._ingesting[job.job_id] = task
            task.add_done_callback(functools.partial(self._ingest_done, job.job_id))

    def _ingest_done(self, job_id: str, _: asyncio.Task[None]) -> None:
        self._ingesting.pop(job_id, None)
        self._woken.set()  # a slot is free: start the next job now

    def _complete_finished(self) -> None:
        for job_id in self._store.jobs_labeling():
            line = self._store.first_open_line(job_id, self._open_from.get(job_id, 0))
            if line is not None:
                self._open_from[job_id] = line
                continue
            if self._store.complete_job(job_id, time.time()):
                log.info("job completed", extra={"job_id": job_id})
            self._open_from.pop(job_id, None)

    async def _ingest(self, job: JobWork) -> None:
        job_id = job.job_id
        try:
            self._store.start_ingesting(job_id, time.time())
            credentials = None
            if job.sealed_credentials is not None:
                credentials = open_credentials(self._sealer, job_id, job.sealed_credentials)
            elif job.spec.s3 is not None:
                raise ManifestUnreadable("the job's S3 credentials are gone; create the job again")
            attempt = 0
            while True:
                try:
                    await self._read(job, credentials)
                    return
                except ManifestUnavailable as exc:
                    attempt += 1
                    if attempt >= ATTEMPTS:
                        raise ManifestUnreadable(f"{exc} ({attempt} attempts)") from None
                    delay = self._retry_delays[min(attempt, len(self._retry_delays)) - 1]
                    log.warning(
                        "manifest read failed; retrying",
                        extra={"job_id": job_id, "error": str(exc), "retry_in": delay},
                    )
                    await asyncio.sleep(delay)
                    current = next((j for j in self._store.jobs_to_ingest() if j.job_id == job_id), None)
                    if current is None:
                        return
                    if current.byte_offset > job.byte_offset:
                        attempt = 0  # that read made progress: the budget is per stall, not per job
                    job = current
        except (ManifestUnreadable, SealBroken) as exc:
            log.warning("job failed", extra={"job_id": job_id, "reason": str(exc)})
            self._store.fail_job(job_id, str(exc), time.time())
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left ingesting: the next look tries again from the last commit, a few times; a
            # fault that repeats fails the job rather than holding an ingestion slot forever.
            log.exception("ingesting a job failed unexpectedly", extra={"job_id": job_id})
            failures = self._unexpected[job_id] = self._unexpected.get(job_id, 0) + 1
            if failures >= ATTEMPTS:
                self._store.fail_job(
                    job_id, "ingestion failed unexpectedly (the core's log has the details)", time.time()
                )
                self._unexpected.pop(job_id, None)
            await asyncio.sleep(ERROR_BACKOFF)

    async def _read(self, job: JobWork, credentials: S3Credentials | None) -> None:
        """From the job's committed position to the end of the manifest, chunk by chunk."""
        chunk = _ChunkBuilder(job.spec, job.lines, job.byte_offset)
        splitter = LineSplitter(self._max_line, job.byte_offset)
        async for data in self._reader.read(job.spec, credentials, job.byte_offset):
            for line, end in splitter.feed(data):
                chunk.add(line, end, self._max_line)
                if chunk.size >= CHUNK_LINES:
                    if not self._commit(job, chunk.take(last=False)):
                        return
                    # A MiB holds a dozen chunks: let gRPC, dispatch and deliveries run between.
                    await asyncio.sleep(0)
        for line, end in splitter.finish():
            chunk.add(line, end, self._max_line)
        self._commit(job, chunk.take(last=True))

    def _commit(self, job: JobWork, chunk: IngestChunk) -> bool:
        """False when the job stopped (failed) with this chunk."""
        try:
            outcome = self._store.ingest_chunk(job.job_id, chunk, time.time())
        except DomainError as exc:  # no longer ingesting (e.g. failed meanwhile)
            log.warning("job chunk refused", extra={"job_id": job.job_id, "reason": exc.message})
            return False
        if outcome.created:
            self._on_submitted()
        if outcome.failure_reason is not None:
            log.info("job failed", extra={"job_id": job.job_id, "reason": outcome.failure_reason})
            return False
        if chunk.last:
            log.info("job ingested", extra={"job_id": job.job_id, "lines": chunk.lines_after})
        return True


class _ChunkBuilder:
    """Lines parsed since the last commit."""

    def __init__(self, spec: JobSpec, lines: int, offset: int) -> None:
        self._spec = spec
        self._line = lines
        self._offset = offset
        self._items: list[tuple[int, ManifestItem]] = []
        self._invalid: list[tuple[int, str]] = []
        self._keys: dict[str, int] = {}  # idempotency key → its line, within this chunk

    @property
    def size(self) -> int:
        return len(self._items) + len(self._invalid)

    def add(self, line: bytes | None, end: int, max_line: int) -> None:
        self._line += 1
        self._offset = end
        if line is None:
            self._invalid.append((self._line, f"line is longer than {max_line} bytes"))
            return
        if not line.strip():
            return  # blank lines are allowed and skipped
        try:
            item = parse_item(line, self._spec)
        except ValidationError as exc:
            self._invalid.append((self._line, exc.message))
            return
        key = item.spec.idempotency_key
        if key is not None:
            if key in self._keys:
                self._invalid.append((self._line, f"idempotency_key repeats line {self._keys[key]}"))
                return
            self._keys[key] = self._line
        self._items.append((self._line, item))

    def take(self, *, last: bool) -> IngestChunk:
        chunk = IngestChunk(self._items, self._invalid, self._line, self._offset, last)
        self._items, self._invalid, self._keys = [], [], {}
        return chunk
