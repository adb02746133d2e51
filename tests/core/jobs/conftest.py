"""Manifest servers and stacks for the job tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register
from tests.manifest_servers import HttpsManifestServer, S3Server

LABEL_SPEC = {"question": "Is there a cat?", "options": ["yes", "no"]}
# The simulated workers of `jobs_stack` take these types; a job of another type stays labeling.
WORKER_TYPES = "image_classification,text_classification,sentiment"
UNLABELED_TYPE = "moderation"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def https_manifests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsManifestServer]:
    with HttpsManifestServer(tmp_path_factory.mktemp("cert")) as server:
        yield server


@pytest.fixture(scope="module")
def jobs_stack(
    tmp_path_factory: pytest.TempPathFactory, https_manifests: HttpsManifestServer
) -> Iterator[Stack]:
    """A stack trusting the manifest server's certificate, with three simulated labelers."""
    with make_stack(
        tmp_path_factory.mktemp("jobs"),
        SSL_CERT_FILE=str(https_manifests.cert),
        ASG_SANDBOX_LABEL_QUOTA="10000000",
    ) as stack:
        stack.start_workers(3, "--task-types", WORKER_TYPES)
        yield stack


class Client:
    """One customer of a stack, speaking the REST API."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.customer = register(stack.base_url)
        self.http = httpx.Client(
            base_url=stack.base_url,
            headers={"Authorization": f"Bearer {self.customer['api_key']}"},
            timeout=30.0,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def create(self, **body: Any) -> httpx.Response:
        return self.http.post("/v1/jobs", json={"label_spec": LABEL_SPEC, **body})

    def create_ok(self, **body: Any) -> str:
        reply = self.create(**body)
        assert reply.status_code == 202, reply.text
        assert reply.json()["status"] == "pending"
        return reply.json()["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.http.get(f"/v1/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job did not get there in {timeout}s: {job}")
            time.sleep(0.05)

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait(job_id, lambda j: j["status"] in statuses, timeout)

    def export(self, job_id: str) -> list[dict[str, Any]]:
        reply = self.http.get(f"/v1/jobs/{job_id}/export")
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/x-ndjson"
        return [orjson.loads(line) for line in reply.content.splitlines()]


def manifest(count: int, start: int = 0, **extra: Any) -> list[bytes]:
    """`count` valid lines, each with its number in data_url and metadata."""
    return [
        orjson.dumps({"data_url": f"https://img.example.com/{i}.jpg", "metadata": {"row": i}, **extra})
        for i in range(start, start + count)
    ]


def jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def read_core_files(data_dir: Path) -> bytes:
    """Every byte the core keeps on disk (the SQLite file and its WAL)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("asg.sqlite3*")))
