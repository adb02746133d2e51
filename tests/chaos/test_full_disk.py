"""A full disk is a 503, not a 500, and costs nothing once space is back (found by the fault
campaign, docs/reliability.md): the core cannot write its store for a while, so a submission
must be answered as "unavailable, retry", like a store locked by another process, and the
same submission retried later is accepted."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx
import pytest

from asg_grpc.devstack import Stack, free_addr

pytestmark = pytest.mark.slow


def task(n: int) -> dict:
    return {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/full/{n}.jpg",
        "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
        "idempotency_key": f"full-{n}",
    }


def test_a_submission_on_a_full_disk_gets_503_and_succeeds_once_space_is_back(tmp_path: Path) -> None:
    stack = Stack(free_addr(), free_addr(), tmp_path / "data", tmp_path / "logs", {"ASG_RATE_LIMIT": "off"})
    with stack:
        reply = httpx.post(
            f"{stack.base_url}/v1/customers", json={"name": "Full", "email": "full@example.com"}, timeout=10
        )
        key = reply.json()["api_key"]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            core = stack.procs["core"].pid
            resource.prlimit(core, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # no write succeeds
            try:
                full = http.post("/v1/tasks", json=task(1))
            finally:
                resource.prlimit(
                    core, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                )

            assert full.status_code == 503, full.text
            assert full.json() == {"error": "core unavailable"}
            retried = http.post("/v1/tasks", json=task(1))
            assert retried.status_code == 202, retried.text
            assert http.get(f"/v1/tasks/{retried.json()['task_id']}").status_code == 200
            assert http.get("/v1/customers/me").json()["labels_reserved"] == 3
