"""Jobs on every backend: a manifest's chunks become tasks, bad lines are counted and kept,
the quota stops a job at the first line that does not fit, and a job ends once."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from asg_grpc.domain.errors import Conflict
from asg_grpc.domain.jobs import JobSpec, JobStatus, ManifestItem
from asg_grpc.store.job_records import IngestChunk
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_tasks import spec

JOB = JobSpec("s3://bucket/m.jsonl", "image_classification", "Q?", ("a", "b"), 3, None)


def items(first: int, count: int, **changes: object) -> list[tuple[int, ManifestItem]]:
    return [
        (n, ManifestItem(replace(spec(n), **changes), f'{{"n": {n}}}'))  # type: ignore[arg-type]
        for n in range(first, first + count)
    ]


def started(store: object, customer_id: str, job_id: str = "job_1") -> str:
    store.create_job(job_id, customer_id, JOB, b"sealed", time.time())  # type: ignore[attr-defined]
    store.start_ingesting(job_id, time.time())  # type: ignore[attr-defined]
    return job_id


def test_a_manifest_in_two_chunks_becomes_tasks_in_line_order(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    job_id = started(store, customer_id)
    [work] = store.jobs_to_ingest()
    assert (work.job_id, work.status, work.sealed_credentials) == (job_id, JobStatus.INGESTING, b"sealed")
    chunk = IngestChunk(items(1, 2), [(3, "bad json")], 3, 300, False)
    first = store.ingest_chunk(job_id, chunk, time.time())
    assert (first.created, first.reused, first.failure_reason) == (2, 0, None)
    last = store.ingest_chunk(job_id, IngestChunk(items(4, 2), [], 5, 500, True), time.time())
    assert last.created == 2
    job = store.get_job(customer_id, job_id)
    assert job.status is JobStatus.LABELING
    assert (job.counts.lines, job.counts.tasks_created, job.counts.invalid_lines) == (5, 4, 1)
    assert job.errors == ((3, "bad json"),)
    assert store.jobs_to_ingest() == [] and store.jobs_labeling() == [job_id]
    rows = store.export_rows(job_id, 0, 10)
    assert [r.line for r in rows] == [1, 2, 4, 5]
    assert rows[0].metadata == '{"n": 1}' and rows[0].status == "pending"
    assert [r.line for r in store.export_rows(job_id, 2, 1)] == [4]
    assert store.first_open_line(job_id, 3) == 4
    assert store.get_job("cus_other", job_id) is None
    # Reopened (another core, or a restart): the same job.
    assert open_store().get_job(customer_id, job_id).counts.tasks_created == 4


def test_a_repeated_idempotency_key_reuses_its_task_once(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    job_id = started(store, customer_id)
    keyed = items(1, 1, idempotency_key="k1")
    outcome = store.ingest_chunk(job_id, IngestChunk(keyed, [], 1, 10, False), time.time())
    again = store.ingest_chunk(job_id, IngestChunk([(2, keyed[0][1])], [], 2, 20, True), time.time())
    assert (outcome.created, again.created) == (1, 0)
    job = store.get_job(customer_id, job_id)
    assert job.errors == ((2, "idempotency_key repeats line 1"),)


def test_the_quota_stops_a_job_at_the_first_line_that_does_not_fit(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)  # quota 100, threshold 3 a task: 33 fit
    job_id = started(store, customer_id)
    outcome = store.ingest_chunk(job_id, IngestChunk(items(1, 40), [], 40, 4000, True), time.time())
    assert outcome.created == 33
    assert outcome.failure_reason is not None and "line 34" in outcome.failure_reason
    job = store.get_job(customer_id, job_id)
    assert job.status is JobStatus.FAILED and job.counts.lines == 33
    assert store.jobs_to_ingest() == []
    with pytest.raises(Conflict):
        store.ingest_chunk(job_id, IngestChunk(items(41, 1), [], 41, 4100, True), time.time())


def test_a_job_ends_once_and_pages_newest_first(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    for n in range(3):
        store.create_job(f"job_{n}", customer_id, JOB, None, time.time())
    page = store.list_jobs(customer_id, limit=2, after_job_id=None)
    assert [j.job_id for j in page.jobs] == ["job_2", "job_1"] and page.next_after == "job_1"
    assert [j.job_id for j in store.list_jobs(customer_id, limit=2, after_job_id="job_1").jobs] == ["job_0"]
    assert store.complete_job("job_0", time.time()) is False  # not labeling
    store.fail_job("job_0", "the manifest is gone", time.time())
    store.fail_job("job_0", "again", time.time())
    job = store.get_job(customer_id, "job_0")
    assert (job.status, job.failure_reason) == (JobStatus.FAILED, "the manifest is gone")
    assert [w.job_id for w in store.jobs_to_ingest()] == ["job_1", "job_2"]


@pytest.mark.parametrize("labor", ["any", "challenge"])
def test_a_jobs_labor_is_kept_everywhere_it_is_read(open_store: OpenStore, labor: str) -> None:
    """docs/jobs.md: the job's `labor` is every task's, so the ingestion reads it back too."""
    store = open_store()
    customer_id = register(store)
    job_id = "job_labor"
    store.create_job(job_id, customer_id, replace(JOB, labor=labor), b"sealed", time.time())
    again = open_store()
    assert again.get_job(customer_id, job_id).spec.labor == labor
    assert [w.spec.labor for w in again.jobs_to_ingest()] == [labor]
    assert [j.spec.labor for j in again.list_jobs(customer_id, limit=10, after_job_id=None).jobs] == [labor]
