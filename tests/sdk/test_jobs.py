"""Batch jobs through the SDK, against a real stack reading manifests from a real HTTPS server.

The stack's simulated workers take only image_classification, so a job of another type stays
labeling: that is how a job that has not completed is had without racing the workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asg_gateway import (
    ASGError,
    ASGGatewayClient,
    AsyncASGGatewayClient,
    BadRequestError,
    ConflictError,
    JobTimeoutError,
    NotFoundError,
)
from asg_gateway._flows import job_wait_flow
from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register
from tests.manifest_servers import HttpsManifestServer
from tests.sdk.test_flows import FakeClock, answers, drive

SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
VALID = 4
MANIFEST = (
    "\n".join(
        [
            *(
                json.dumps({"data_url": f"https://cdn.example.com/{i}.jpg", "metadata": {"n": i}})
                for i in range(VALID)
            ),
            '{"data_url": ',  # line 5: cut short
        ]
    )
    + "\n"
).encode()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsManifestServer]:
    with HttpsManifestServer(tmp_path_factory.mktemp("web")) as server:
        server.files["animals.jsonl"] = MANIFEST
        yield server


@pytest.fixture(scope="module")
def job_stack(tmp_path_factory: pytest.TempPathFactory, web: HttpsManifestServer) -> Iterator[Stack]:
    """A stack whose core trusts the manifest server's certificate, with image workers only."""
    with make_stack(tmp_path_factory.mktemp("jobs"), SSL_CERT_FILE=str(web.cert)) as stack:
        stack.start_workers(3, "--task-types", "image_classification")
        yield stack


@pytest.fixture(scope="module")
def api_key(job_stack: Stack) -> str:
    return str(register(job_stack.base_url)["api_key"])


@pytest.fixture
def client(job_stack: Stack, api_key: str) -> Iterator[ASGGatewayClient]:
    with ASGGatewayClient(api_key, job_stack.base_url) as client:
        yield client


@pytest.fixture(scope="module")
def completed(job_stack: Stack, api_key: str, web: HttpsManifestServer) -> dict[str, Any]:
    """One job over the manifest, waited for to the end, with what wait_job reported on the way."""
    seen: list[dict[str, Any]] = []
    with ASGGatewayClient(api_key, job_stack.base_url) as client:
        created = client.create_job(web.url("animals.jsonl"), SPEC, consensus_threshold=2)
        job = client.wait_job(created["job_id"], timeout=60, interval=0.2, on_progress=seen.append)
    return {"created": created, "job": job, "seen": seen}


def rest_export(stack: Stack, api_key: str, job_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{stack.base_url}/v1/jobs/{job_id}/export", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert reply.status_code == 200, reply.text
    return [json.loads(line) for line in reply.text.splitlines()]


def test_create_returns_a_pending_job(completed: dict[str, Any]) -> None:
    assert completed["created"]["job_id"].startswith("job_")
    assert completed["created"]["status"] == "pending"


def test_wait_job_returns_the_completed_job_with_counts_and_line_errors(completed: dict[str, Any]) -> None:
    job = completed["job"]
    assert job["status"] == "completed"
    assert job["counts"]["lines"] == VALID + 1
    assert job["counts"]["tasks_created"] == VALID
    assert job["counts"]["invalid_lines"] == 1
    assert job["counts"]["verified"] + job["counts"]["settled"] == VALID
    assert [e["line"] for e in job["errors"]] == [VALID + 1]
    # on_progress saw every fetch, the last one being the job returned
    assert completed["seen"][-1] == job


def test_get_job_echoes_what_was_submitted(
    client: ASGGatewayClient, completed: dict[str, Any], web: HttpsManifestServer
) -> None:
    job = client.get_job(completed["created"]["job_id"])
    assert job["manifest_url"] == web.url("animals.jsonl")
    assert job["type"] == "image_classification"
    assert job["label_spec"] == SPEC
    assert job["consensus_threshold"] == 2
    assert job["completed_at"] is not None


def test_export_job_iterates_the_rows_of_the_rest_export(
    client: ASGGatewayClient, completed: dict[str, Any], job_stack: Stack, api_key: str
) -> None:
    job_id = completed["created"]["job_id"]
    rows = list(client.export_job(job_id))
    assert rows == rest_export(job_stack, api_key, job_id)
    assert [row["metadata"] for row in rows] == [{"n": i} for i in range(VALID)]
    assert all(row["consensus_label"] in SPEC["options"] for row in rows)


def test_list_jobs_finds_the_job_newest_first(client: ASGGatewayClient, completed: dict[str, Any]) -> None:
    page = client.list_jobs(limit=200)
    job_ids = [j["job_id"] for j in page["jobs"]]
    assert completed["created"]["job_id"] in job_ids
    assert job_ids == sorted(job_ids, reverse=True)
    assert page["next_cursor"] is None


def test_an_export_is_read_once(client: ASGGatewayClient, completed: dict[str, Any]) -> None:
    with client.export_job(completed["created"]["job_id"]) as rows:
        assert next(iter(rows))["metadata"] == {"n": 0}
    with pytest.raises(ASGError, match="already read or closed"):
        list(rows)


def test_export_before_completion_raises_conflict(client: ASGGatewayClient, web: HttpsManifestServer) -> None:
    job_id = client.create_job(web.url("animals.jsonl"), SPEC, task_type="sentiment")["job_id"]
    with pytest.raises(ConflictError) as caught:
        client.export_job(job_id)
    assert caught.value.status == 409
    assert job_id in caught.value.message


def test_wait_job_times_out_with_the_last_state_seen(
    client: ASGGatewayClient, web: HttpsManifestServer
) -> None:
    job_id = client.create_job(web.url("animals.jsonl"), SPEC, task_type="sentiment")["job_id"]
    with pytest.raises(JobTimeoutError) as caught:
        client.wait_job(job_id, timeout=1, interval=0.2)
    assert caught.value.job_id == job_id
    assert caught.value.last_status in ("pending", "ingesting", "labeling")
    assert caught.value.job["job_id"] == job_id


def test_unknown_or_anothers_job_raises_not_found(
    client: ASGGatewayClient, completed: dict[str, Any], job_stack: Stack
) -> None:
    with pytest.raises(NotFoundError):
        client.get_job("job_doesnotexist")
    with pytest.raises(NotFoundError):
        client.export_job("job_doesnotexist")
    with ASGGatewayClient(register(job_stack.base_url)["api_key"], job_stack.base_url) as other:
        with pytest.raises(NotFoundError):
            other.get_job(completed["created"]["job_id"])
        with pytest.raises(NotFoundError):
            other.export_job(completed["created"]["job_id"])


def test_s3_credentials_for_an_https_manifest_raise_bad_request_naming_them(
    client: ASGGatewayClient, web: HttpsManifestServer
) -> None:
    credentials = {"access_key_id": "AKIAX", "secret_access_key": "s", "region": "us-east-1"}
    with pytest.raises(BadRequestError, match="s3_credentials"):
        client.create_job(web.url("animals.jsonl"), SPEC, s3_credentials=credentials)


def test_create_job_takes_labor_and_a_bad_one_raises_naming_it(
    client: ASGGatewayClient, web: HttpsManifestServer
) -> None:
    created = client.create_job(web.url("animals.jsonl"), SPEC, labor="challenge")
    assert client.get_job(created["job_id"])["labor"] == "challenge"
    with pytest.raises(BadRequestError, match="labor must be one of any, challenge"):
        client.create_job(web.url("animals.jsonl"), SPEC, labor="robots")


@pytest.mark.asyncio
async def test_async_client_job_path(
    job_stack: Stack, api_key: str, web: HttpsManifestServer, completed: dict[str, Any]
) -> None:
    async with AsyncASGGatewayClient(api_key, job_stack.base_url) as client:
        created = await client.create_job(web.url("animals.jsonl"), SPEC)
        job = await client.wait_job(created["job_id"], timeout=60, interval=0.2)
        assert job["status"] == "completed"
        assert (await client.get_job(created["job_id"]))["counts"] == job["counts"]
        assert (await client.list_jobs(limit=1))["jobs"][0]["job_id"] == created["job_id"]
        rows = [row async for row in await client.export_job(created["job_id"])]
        assert rows == rest_export(job_stack, api_key, created["job_id"])
        assert [row["data_url"] for row in rows] == [f"https://cdn.example.com/{i}.jpg" for i in range(VALID)]
        async with await client.export_job(completed["created"]["job_id"]) as first:
            assert [row async for row in first] == rest_export(
                job_stack, api_key, completed["created"]["job_id"]
            )
        pending = await client.create_job(web.url("animals.jsonl"), SPEC, task_type="moderation")
        with pytest.raises(ConflictError):
            await client.export_job(pending["job_id"])
        with pytest.raises(NotFoundError):
            await client.get_job("job_doesnotexist")


# The waiting schedule, driven step by step with a fake clock (see test_flows.py).

JOB_URL = "http://gateway.test/v1/jobs/job_1"


def job(status: str, verified: int = 0) -> httpx.Response:
    return httpx.Response(200, json={"job_id": "job_1", "status": status, "counts": {"verified": verified}})


def wait(clock: FakeClock, timeout: float | None, seen: list[Any] | None = None) -> Any:
    return job_wait_flow(
        httpx.Request("GET", JOB_URL),
        job_id="job_1",
        timeout=timeout,
        interval=2,
        max_retries=2,
        on_progress=None if seen is None else seen.append,
        clock=clock,
    )


def test_wait_flow_keeps_a_steady_interval_and_reports_every_fetch() -> None:
    clock, seen = FakeClock(), []
    replies = answers(job("pending"), job("labeling", 1), job("labeling", 2), job("completed", 3))
    done = drive(wait(clock, None, seen), replies, clock)
    assert done["status"] == "completed"
    assert clock.sleeps == [2, 2, 2]
    assert [j["counts"]["verified"] for j in seen] == [0, 1, 2, 3]


def test_wait_flow_returns_a_failed_job_rather_than_raising() -> None:
    clock = FakeClock()
    assert drive(wait(clock, 10), answers(job("ingesting"), job("failed")), clock)["status"] == "failed"


def test_wait_flow_fetches_last_at_the_deadline_then_raises() -> None:
    clock = FakeClock()
    with pytest.raises(JobTimeoutError) as caught:
        drive(wait(clock, 5), answers(*[job("labeling", 1)] * 4), clock)
    assert clock.sleeps == [2, 2, 1]
    assert caught.value.last_status == "labeling" and caught.value.job["counts"] == {"verified": 1}


def test_wait_flow_retries_a_transient_failure_inside_one_round() -> None:
    clock = FakeClock()
    flaky = answers(httpx.Response(503, json={"error": "core unavailable"}), job("completed"))
    assert drive(wait(clock, None), flaky, clock)["status"] == "completed"
    assert len(clock.sleeps) == 1 and clock.sleeps[0] <= 0.5  # a retry backoff, not an interval


def test_wait_rejects_a_non_positive_interval() -> None:
    with ASGGatewayClient("sk_test", "http://gateway.test") as client, pytest.raises(ValueError):
        client.wait_job("job_1", interval=0)
