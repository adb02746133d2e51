"""Jobs in flight per customer (docs/api.md, Limits): past ASG_MAX_JOBS_IN_FLIGHT a new job is a
429 naming the limit, with Retry-After, over the real gateway and core; other customers and
finished jobs do not count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack
from tests.core.jobs.conftest import UNLABELED_TYPE, Client, jsonl, manifest
from tests.manifest_servers import HttpsManifestServer


@pytest.fixture
def limited_stack(tmp_path: Path, https_manifests: HttpsManifestServer) -> Iterator[Stack]:
    """No workers: a job of one task stays labeling, in flight, for as long as the test runs."""
    with make_stack(tmp_path, SSL_CERT_FILE=str(https_manifests.cert), ASG_MAX_JOBS_IN_FLIGHT="2") as stack:
        yield stack


def test_a_job_past_the_in_flight_limit_is_429_naming_it(
    limited_stack: Stack, https_manifests: HttpsManifestServer
) -> None:
    https_manifests.files["one.jsonl"] = jsonl(manifest(1))
    https_manifests.files["missing-line.jsonl"] = b""  # completes at once: no tasks
    url = https_manifests.url("one.jsonl")
    with Client(limited_stack) as client, Client(limited_stack) as other:
        done = client.create_ok(manifest_url=https_manifests.url("missing-line.jsonl"), type=UNLABELED_TYPE)
        client.wait_status(done, "completed", "failed")
        first = client.create_ok(manifest_url=url, type=UNLABELED_TYPE)
        client.create_ok(manifest_url=url, type=UNLABELED_TYPE)
        client.wait_status(first, "labeling")

        refused = client.create(manifest_url=url, type=UNLABELED_TYPE)
        assert refused.status_code == 429
        assert refused.json() == {
            "error": "a customer may have at most 2 jobs in flight (pending, ingesting or labeling)"
        }
        assert refused.headers["Retry-After"] == "30"
        other.create_ok(manifest_url=url, type=UNLABELED_TYPE)  # its own limit
