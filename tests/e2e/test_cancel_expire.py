"""Cancelling a task and task deadlines, through the REST API of a real stack.

No labelers run here, so tasks stay pending until cancelled or expired; the labeled case
(billing and paying the labels collected) is tests/core/labeling/test_cancel.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_gateway import verify_webhook_signature
from asg_grpc.devstack import Stack
from asg_grpc.domain.tasks import MAX_EXPIRES_IN
from tests.conftest import make_stack
from tests.core.webhooks.receiver import Receiver, make_cert
from tests.e2e.test_labeling import customer_client, submit, task_body, wait_for

pytestmark = pytest.mark.slow
SECRET = "whsec_cancel_expire_secret"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, cert: tuple[Path, Path]) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("stack"), SSL_CERT_FILE=str(cert[0])) as s:
        yield s


@pytest.fixture
def receiver(cert: tuple[Path, Path]) -> Iterator[Receiver]:
    r = Receiver(*cert).start()
    yield r
    r.stop()


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with customer_client(stack) as client:
        yield client


def quota_remaining(http: httpx.Client) -> int:
    reply = http.get("/v1/customers/me")
    assert reply.status_code == 200, reply.text
    remaining: int = reply.json()["quota_remaining"]
    return remaining


def hook(http: httpx.Client, receiver: Receiver, event: str) -> None:
    body = {"callback_url": receiver.url, "secret": SECRET, "events": [event]}
    reply = http.post("/v1/webhooks", json=body)
    assert reply.status_code == 201, reply.text


def event_of(receiver: Receiver) -> dict[str, Any]:
    (request,) = receiver.wait_for(1, 20)
    return verify_webhook_signature(request.body, request.headers["ASG-Signature"], SECRET)


def test_cancelling_a_pending_task_ends_it_and_gives_its_quota_back(
    http: httpx.Client, receiver: Receiver
) -> None:
    hook(http, receiver, "task.cancelled")
    before = quota_remaining(http)
    task_id = submit(http, task_body(1, ["cat", "dog"], 3))
    assert quota_remaining(http) == before - 3

    reply = http.delete(f"/v1/tasks/{task_id}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["status"], body["failure_reason"], body["worker_count"]) == ("cancelled", "cancelled", 0)
    assert body["consensus_label"] is None and body["decided_at"] is not None

    assert http.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
    result = http.get(f"/v1/tasks/{task_id}/result")
    assert result.status_code == 200 and result.json() == body
    assert quota_remaining(http) == before  # no label was collected: all of it comes back
    event = event_of(receiver)
    assert event["type"] == "task.cancelled" and event["data"] == body

    again = http.delete(f"/v1/tasks/{task_id}")  # a retried cancel answers the same
    assert again.status_code == 200 and again.json() == body
    usage = http.get("/v1/billing/usage").json()
    assert (usage["tasks_failed"], usage["sats_charged"]) == (1, 0)


def test_another_customers_task_cannot_be_cancelled(stack: Stack, http: httpx.Client) -> None:
    task_id = submit(http, task_body(2, ["cat", "dog"], 3))
    with customer_client(stack) as other:
        reply = other.delete(f"/v1/tasks/{task_id}")
    assert reply.status_code == 404, reply.text
    assert reply.json() == {"error": "task not found"}
    assert http.get(f"/v1/tasks/{task_id}").json()["status"] == "pending"


def test_a_task_past_its_deadline_ends_expired(http: httpx.Client, receiver: Receiver) -> None:
    hook(http, receiver, "task.expired")
    task_id = submit(http, {**task_body(3, ["cat", "dog"], 2), "expires_in_seconds": 1})
    task = http.get(f"/v1/tasks/{task_id}").json()
    assert task["status"] == "pending" and task["expires_at"] is not None

    def ended() -> dict[str, Any] | None:
        reply = http.get(f"/v1/tasks/{task_id}/result")
        return reply.json() if reply.status_code == 200 else None

    result = wait_for("expiry", ended, 10)
    assert (result["status"], result["failure_reason"]) == ("expired", "expired")
    event = event_of(receiver)
    assert event["type"] == "task.expired" and event["data"]["task_id"] == task_id
    # Decided tasks cannot be cancelled any more.
    reply = http.delete(f"/v1/tasks/{task_id}")
    assert reply.status_code == 409, reply.text
    assert "already expired" in reply.json()["error"]


@pytest.mark.parametrize("value", [0, -5, MAX_EXPIRES_IN + 1, "60", 1.5, True])
def test_a_bad_deadline_is_refused_naming_the_field(http: httpx.Client, value: object) -> None:
    reply = http.post("/v1/tasks", json={**task_body(4, ["cat", "dog"], 3), "expires_in_seconds": value})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith("expires_in_seconds ")


def test_a_deadline_in_a_batch_is_checked_per_task(http: httpx.Client) -> None:
    tasks = [task_body(5, ["a", "b"], 2), {**task_body(6, ["a", "b"], 2), "expires_in_seconds": 0}]
    reply = http.post("/v1/tasks/batch", json={"tasks": tasks})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith("tasks[1].expires_in_seconds ")
