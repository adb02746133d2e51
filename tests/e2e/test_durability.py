"""An accepted (202) task is durable: the core is SIGKILLed right after answering, as a crash
would, started again on the same SQLite file, and the task is still there.

Real processes (`fresh_stack`): the gateway keeps running and reconnects to the new core.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import register

pytestmark = pytest.mark.slow


def task(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/{n}.jpg",
        "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
        **extra,
    }


def crash_and_restart_core(stack: Stack) -> None:
    stack.kill("core")
    stack.start_core()
    stack.wait_ready()


def test_single_task_survives_a_core_crash_right_after_202(fresh_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {register(fresh_stack.base_url)['api_key']}"}
    with httpx.Client(base_url=fresh_stack.base_url, headers=auth, timeout=10) as http:
        accepted = []
        for n in range(2):
            reply = http.post("/v1/tasks", json=task(n, consensus_threshold=2))
            assert reply.status_code == 202, reply.text
            accepted.append(reply.json())
            crash_and_restart_core(fresh_stack)

        for n, body in enumerate(accepted):
            stored = http.get(f"/v1/tasks/{body['task_id']}")
            assert stored.status_code == 200, stored.text
            assert stored.json()["data_url"] == f"https://cdn.example.com/{n}.jpg"
            assert stored.json()["created_at"] == body["created_at"]
        assert http.get("/v1/customers/me").json()["labels_reserved"] == 4


def test_batch_survives_a_core_crash_right_after_202(fresh_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {register(fresh_stack.base_url)['api_key']}"}
    with httpx.Client(base_url=fresh_stack.base_url, headers=auth, timeout=10) as http:
        reply = http.post("/v1/tasks/batch", json={"tasks": [task(n) for n in range(100)]})
        assert reply.status_code == 202, reply.text
        batch = reply.json()
        crash_and_restart_core(fresh_stack)

        for task_id in batch["task_ids"]:
            stored = http.get(f"/v1/tasks/{task_id}")
            assert stored.status_code == 200, stored.text
            assert stored.json()["batch_id"] == batch["batch_id"]
        assert http.get("/v1/customers/me").json()["labels_reserved"] == 300


def test_idempotent_replay_after_a_core_crash_returns_the_first_task(fresh_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {register(fresh_stack.base_url)['api_key']}"}
    with httpx.Client(base_url=fresh_stack.base_url, headers=auth, timeout=10) as http:
        body = task(0, idempotency_key="order-1")
        first = http.post("/v1/tasks", json=body)
        assert first.status_code == 202, first.text
        crash_and_restart_core(fresh_stack)

        replay = http.post("/v1/tasks", json=body)
        conflict = http.post("/v1/tasks", json=task(1, idempotency_key="order-1"))

        assert replay.status_code == 200, replay.text
        assert replay.json() == {**first.json(), "idempotent": True}
        assert conflict.status_code == 409
        assert http.get("/v1/customers/me").json()["labels_reserved"] == 3


def test_gateway_answers_503_while_the_core_is_down(fresh_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {register(fresh_stack.base_url)['api_key']}"}
    with httpx.Client(base_url=fresh_stack.base_url, headers=auth, timeout=30) as http:
        fresh_stack.kill("core")

        health = http.get("/v1/health")
        submit = http.post("/v1/tasks", json=task(0))

        assert health.status_code == 503
        assert health.json() == {"ok": False, "service": "asg-gateway", "error": "core unavailable"}
        assert submit.status_code == 503
        assert submit.json() == {"error": "core unavailable"}

        fresh_stack.start_core()
        fresh_stack.wait_ready()
        assert http.get("/v1/tasks").json()["tasks"] == []
