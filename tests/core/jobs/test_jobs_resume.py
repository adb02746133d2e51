"""A core SIGKILLed while it reads a manifest resumes after restart from its last commit:
every line becomes exactly one task, none is lost, none is created twice."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack
from tests.core.jobs.conftest import Client, jsonl, manifest
from tests.manifest_servers import HttpsManifestServer, S3Server

LINES = 100_000
KILL_AFTER = 5_000  # committed lines seen before the SIGKILL


def big_manifest() -> tuple[bytes, int]:
    """LINES lines, every 1000th of them invalid; returns the body and the valid count."""
    lines = manifest(LINES)
    for i in range(999, LINES, 1000):
        lines[i] = orjson.dumps({"data_url": f"ftp://bad.example/{i}"})
    return jsonl(lines), LINES - LINES // 1000


def kill_mid_ingestion_and_restart(stack: Stack, client: Client, job_id: str) -> dict[str, Any]:
    seen = client.wait(job_id, lambda j: j["counts"]["lines"] >= KILL_AFTER, timeout=60)
    assert seen["status"] == "ingesting" and seen["counts"]["lines"] < LINES, f"not mid-way: {seen}"
    stack.kill("core")
    stack.start_core()
    stack.wait_ready()
    return client.wait_status(job_id, "labeling", "failed", "completed", timeout=120)


def assert_each_line_once(stack: Stack, client: Client, job_id: str, job: dict, valid: int) -> None:
    assert job["status"] == "labeling", job
    counts = job["counts"]
    assert (counts["lines"], counts["tasks_created"], counts["invalid_lines"]) == (
        LINES,
        valid,
        LINES - valid,
    )
    with sqlite3.connect(stack.data_dir / "asg.sqlite3") as db:
        [(tasks, urls)] = db.execute(
            "SELECT count(*), count(DISTINCT data_url) FROM tasks WHERE batch_id = ?", (job_id,)
        )
        [(items,)] = db.execute("SELECT count(*) FROM job_items WHERE job_id = ?", (job_id,))
    assert (tasks, urls, items) == (valid, valid, valid)
    me = client.http.get("/v1/customers/me").json()
    assert me["labels_reserved"] == 3 * valid, "quota reserved once per task"


@pytest.mark.slow
def test_an_s3_job_resumes_after_sigkill(tmp_path: Path, s3: S3Server) -> None:
    body, valid = big_manifest()
    url = s3.put("manifests", f"{uuid.uuid4().hex}.jsonl", body)
    with make_stack(tmp_path, ASG_SANDBOX_LABEL_QUOTA="10000000") as stack, Client(stack) as client:
        job_id = client.create_ok(manifest_url=url, s3_credentials=s3.credentials())
        job = kill_mid_ingestion_and_restart(stack, client, job_id)
        assert_each_line_once(stack, client, job_id, job, valid)


@pytest.mark.slow
def test_an_https_job_resumes_after_sigkill_with_a_range_request(
    tmp_path: Path, https_manifests: HttpsManifestServer
) -> None:
    body, valid = big_manifest()
    https_manifests.files["big.jsonl"] = body
    with (
        make_stack(
            tmp_path, ASG_SANDBOX_LABEL_QUOTA="10000000", SSL_CERT_FILE=str(https_manifests.cert)
        ) as stack,
        Client(stack) as client,
    ):
        job_id = client.create_ok(manifest_url=https_manifests.url("big.jsonl"))
        https_manifests.ranges.clear()
        job = kill_mid_ingestion_and_restart(stack, client, job_id)
        assert_each_line_once(stack, client, job_id, job, valid)
    first, resumed = https_manifests.ranges[0], https_manifests.ranges[-1]
    assert first is None and resumed is not None and resumed.startswith("bytes=")
    assert 0 < int(resumed[len("bytes=") : -1]) < len(body)
