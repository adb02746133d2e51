"""Webhook delivery end to end: core, gateway and labelers as real processes, a real HTTPS
receiver on 127.0.0.1 (self-signed certificate, trusted through SSL_CERT_FILE in the core's
environment). Retries are scaled down (ASG_WEBHOOK_RETRY_SCALE) so they happen within a test.

Deadlines are generous completion deadlines, never measurements, except where a test proves
that a stuck receiver does not slow task processing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from asg_gateway import verify_webhook_signature
from asg_grpc.devstack import Stack
from tests.conftest import make_stack
from tests.core.webhooks.receiver import Receiver, Script, make_cert
from tests.e2e.test_labeling import customer_client, final_result, final_results, submit, task_body, wait_for

pytestmark = pytest.mark.slow

SECRET = "whsec_e2e_secret_value"
FAST_RETRIES = {"ASG_WEBHOOK_RETRY_SCALE": "0.01", "ASG_WEBHOOK_TIMEOUT": "1"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("cert"))


class Env:
    """A stack with three labelers that always answer "cat", and a factory for receivers."""

    def __init__(self, tmp: Path, cert: tuple[Path, Path], env: dict[str, str]) -> None:
        self.cert = cert
        self.stack: Stack = make_stack(tmp, SSL_CERT_FILE=str(cert[0]), **env)
        self.receivers: list[Receiver] = []

    def receiver(self, script: Script | None = None) -> Receiver:
        r = Receiver(*self.cert, script=script).start()
        self.receivers.append(r)
        return r

    def close(self) -> None:
        for r in self.receivers:
            r.stop()


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, cert: tuple[Path, Path]) -> Iterator[Env]:
    e = Env(tmp_path, cert, {**FAST_RETRIES, **getattr(request, "param", {})})
    try:
        with e.stack:
            e.stack.start_workers(3, "--always", "cat")
            yield e
    finally:
        e.close()


def stack_env(**kw: str) -> pytest.MarkDecorator:
    """Extra environment for the test's stack (the `env` fixture, parametrized indirectly)."""
    return pytest.mark.parametrize("env", [kw], indirect=True, ids=["env"])


# The tests here follow one delivery per decision; task.settled (which follows each verified
# task within a second) is covered by tests/core/settlement and tests/core/jobs.
DECISIONS = ["task.verified", "task.failed"]


def register_hook(http: httpx.Client, url: str, events: list[str] | None = None) -> str:
    body: dict[str, Any] = {"callback_url": url, "secret": SECRET, "events": events or DECISIONS}
    reply = http.post("/v1/webhooks", json=body)
    assert reply.status_code == 201, reply.text
    webhook_id: str = reply.json()["webhook_id"]
    return webhook_id


def deliveries(http: httpx.Client, webhook_id: str) -> list[dict[str, Any]]:
    reply = http.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["deliveries"]
    return found


def settled_delivery(http: httpx.Client, webhook_id: str, state: str = "delivered") -> dict[str, Any]:
    """The webhook's only delivery, once it reached `state`."""

    def check() -> dict[str, Any] | None:
        found = deliveries(http, webhook_id)
        return found[0] if len(found) == 1 and found[0]["state"] == state else None

    result: dict[str, Any] = wait_for(f"delivery of {webhook_id} {state}", check, 20)
    return result


def test_verified_task_is_delivered_signed_with_the_result_as_data(env: Env) -> None:
    receiver = env.receiver()
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        task_id = submit(http, task_body(1, ["cat", "dog"], 3))
        result = final_result(http, task_id, 20)
        (request,) = receiver.wait_for(1, 20)
        record = settled_delivery(http, webhook_id)
    event = verify_webhook_signature(request.body, request.headers["ASG-Signature"], SECRET)
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["type"] == "task.verified"
    assert event["id"].startswith("evt_")
    assert event["data"] == result
    assert event["data"]["consensus_label"] == "cat"
    assert time.strptime(event["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["ASG-Event"] == "task.verified"
    assert request.headers["ASG-Delivery"] == record["delivery_id"]
    assert record["delivery_id"].startswith("dlv_")
    assert (record["event_id"], record["event"]) == (event["id"], "task.verified")
    assert (record["attempts"], record["last_status_code"], record["last_error"]) == (1, 200, None)
    assert record["delivered_at"] is not None


def test_failing_receiver_is_retried_with_the_same_body(env: Env) -> None:
    receiver = env.receiver(lambda n: (500, 0.0) if n <= 2 else (200, 0.0))
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(2, ["cat", "dog"], 3)), 20)
        requests = receiver.wait_for(3, 30)
        record = settled_delivery(http, webhook_id)
    assert len({r.body for r in requests}) == 1
    assert len({r.headers["ASG-Delivery"] for r in requests}) == 1
    for r in requests:
        verify_webhook_signature(r.body, r.headers["ASG-Signature"], SECRET)
    assert (record["attempts"], record["last_status_code"]) == (3, 200)


def test_receiver_slower_than_the_timeout_is_retried(env: Env) -> None:
    receiver = env.receiver(lambda n: (200, 5.0) if n == 1 else (200, 0.0))
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(3, ["cat", "dog"], 3)), 20)
        record = settled_delivery(http, webhook_id)
    assert record["attempts"] == 2
    assert len(receiver.requests) == 2


def test_410_gone_deactivates_the_webhook(env: Env) -> None:
    receiver = env.receiver(lambda n: (410, 0.0))
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(4, ["cat", "dog"], 3)), 20)
        record = settled_delivery(http, webhook_id, "abandoned")
        assert (record["attempts"], record["last_status_code"]) == (1, 410)
        (hook,) = http.get("/v1/webhooks").json()["webhooks"]
        assert (hook["webhook_id"], hook["active"]) == (webhook_id, False)
        final_result(http, submit(http, task_body(5, ["cat", "dog"], 3)), 20)
        time.sleep(1.0)  # several fan-out and delivery rounds
        assert len(deliveries(http, webhook_id)) == 1
    assert len(receiver.requests) == 1


def test_task_callback_url_gets_its_events_alone(env: Env) -> None:
    named, other = env.receiver(), env.receiver()
    with customer_client(env.stack) as http:
        named_id = register_hook(http, named.url)
        other_id = register_hook(http, other.url)
        with_url = submit(http, {**task_body(6, ["cat", "dog"], 3), "callback_url": named.url})
        without = submit(http, task_body(7, ["cat", "dog"], 3))
        final_results(http, [with_url, without], 20)
        wait_for("named receiver's two events", lambda: len(named.requests) >= 2, 20)
        wait_for("other receiver's one event", lambda: len(other.requests) >= 1, 20)
        time.sleep(0.5)
        assert len(deliveries(http, named_id)) == 2
        assert len(deliveries(http, other_id)) == 1
    named_tasks = sorted(orjson.loads(r.body)["data"]["task_id"] for r in named.requests)
    assert named_tasks == sorted([with_url, without])
    assert [orjson.loads(r.body)["data"]["task_id"] for r in other.requests] == [without]


@stack_env(ASG_WEBHOOK_TIMEOUT="60")
def test_delivery_in_flight_when_the_core_is_killed_goes_out_after_restart(env: Env) -> None:
    hanging = True
    receiver = env.receiver(lambda n: (200, 120.0) if hanging else (200, 0.0))
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(8, ["cat", "dog"], 3)), 20)
        (first,) = receiver.wait_for(1, 20)  # the attempt is waiting for an answer
        env.stack.kill("core")
        hanging = False
        env.stack.start_core()
        env.stack.wait_ready()
        requests = receiver.wait_for(2, 30)
        record = settled_delivery(http, webhook_id)
    assert requests[1].body == first.body
    assert requests[1].headers["ASG-Delivery"] == first.headers["ASG-Delivery"] == record["delivery_id"]
    verify_webhook_signature(requests[1].body, requests[1].headers["ASG-Signature"], SECRET)
    # The killed attempt left no trace but the pending delivery: one attempt is recorded.
    assert record["attempts"] == 1


def test_delivery_queued_while_the_receiver_is_down_survives_sigkill(env: Env) -> None:
    receiver = env.receiver()
    receiver.stop()  # down: connections are refused
    with customer_client(env.stack) as http:
        webhook_id = register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(9, ["cat", "dog"], 3)), 20)
        # No delivery yet (the event is fanned out on the worker's next poll) is no attempt yet.
        wait_for("a failed attempt", lambda: [d["attempts"] for d in deliveries(http, webhook_id)] >= [1], 20)
        env.stack.kill("core")
        receiver.start()  # same port
        env.stack.start_core()
        env.stack.wait_ready()
        (request,) = receiver.wait_for(1, 30)
        record = settled_delivery(http, webhook_id)
    assert record["attempts"] >= 2
    assert request.headers["ASG-Delivery"] == record["delivery_id"]


@stack_env(ASG_WEBHOOK_TIMEOUT="30", ASG_WEBHOOK_CONCURRENCY="1")
def test_stuck_receiver_does_not_slow_task_processing(env: Env) -> None:
    receiver = env.receiver(lambda n: (200, 60.0))  # never answers within the timeout
    with customer_client(env.stack) as http:
        register_hook(http, receiver.url)
        final_result(http, submit(http, task_body(10, ["cat", "dog"], 3)), 20)
        receiver.wait_for(1, 20)  # the only delivery slot is now stuck
        started = time.monotonic()
        task_ids = [submit(http, task_body(100 + i, ["cat", "dog"], 3)) for i in range(30)]
        results = final_results(http, task_ids, 20)
        elapsed = time.monotonic() - started
    assert all(r["consensus_label"] == "cat" for r in results)
    # Well inside the 30 s the stuck attempt may take: nothing waited for it.
    assert elapsed < 10, elapsed
    assert len(receiver.requests) == 1
