"""The delivery worker in process: a real SQLite store with queued deliveries, a real HTTP
receiver on 127.0.0.1. Fan-out targeting and the meaning of each answer are checked directly."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from asg_gateway import verify_webhook_signature
from asg_grpc.domain.ids import new_id
from asg_grpc.domain.webhooks import EVENT_TYPES, RETRY_SCHEDULE, WebhookSpec, next_attempt_delay
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.settings import Settings
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.webhook_records import DueDelivery, EventRecord, HookTarget, NewDelivery
from asg_grpc.webhooks.fanout import targets
from asg_grpc.webhooks.worker import USER_AGENT, WebhookWorker, outcome
from asg_grpc.wire.events import render
from tests.core.webhooks.receiver import Receiver

SECRET = "whsec_test_secret"
SEALER = Sealer(bytes(32))


def event(event_type: str = "task.verified", callback_url: str | None = None) -> EventRecord:
    return EventRecord(1, "evt_1", event_type, "cus_1", "tsk_1", callback_url, 1_775_736_000.5)


HOOKS = [
    HookTarget("whk_all", "https://a.example.com/hook", EVENT_TYPES),
    HookTarget("whk_failed", "https://b.example.com/hook", ("task.failed",)),
    HookTarget("whk_task", "https://c.example.com/hook", ("task.verified", "task.failed")),
]


def test_event_goes_to_every_subscribed_hook() -> None:
    assert [h.webhook_id for h in targets(event("task.verified"), HOOKS)] == ["whk_all", "whk_task"]
    assert [h.webhook_id for h in targets(event("task.failed"), HOOKS)] == [
        "whk_all",
        "whk_failed",
        "whk_task",
    ]
    assert [h.webhook_id for h in targets(event("job.completed"), HOOKS)] == ["whk_all"]


def test_event_of_a_task_with_callback_url_goes_to_that_hook_only() -> None:
    chosen = targets(event("task.verified", "https://c.example.com/hook"), HOOKS)
    assert [h.webhook_id for h in chosen] == ["whk_task"]


def test_callback_url_hook_not_subscribed_to_the_type_gets_nothing() -> None:
    assert targets(event("task.verified", "https://b.example.com/hook"), HOOKS) == []
    assert targets(event("task.verified", "https://gone.example.com/hook"), HOOKS) == []


def test_render_is_the_documented_event_object() -> None:
    body = orjson.loads(render(event(), {"task_id": "tsk_1"}))
    assert body == {
        "id": "evt_1",
        "type": "task.verified",
        "created_at": "2026-04-09T12:00:00Z",
        "data": {"task_id": "tsk_1"},
    }


def due(attempts: int = 0) -> DueDelivery:
    return DueDelivery(
        "dlv_1", "whk_1", "https://x.example.com/", b"sealed", "task.verified", b"{}", attempts
    )


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    result = outcome(due(), status, None, 100.0)
    assert (result.state, result.next_attempt_at, result.deactivate_webhook) == ("delivered", None, False)


def test_410_abandons_and_deactivates() -> None:
    result = outcome(due(), 410, None, 100.0)
    assert (result.state, result.deactivate_webhook) == ("abandoned", True)


@pytest.mark.parametrize(("status", "error"), [(500, None), (301, None), (404, None), (None, "timed out")])
def test_other_answers_are_retried_per_schedule(status: int | None, error: str | None) -> None:
    result = outcome(due(attempts=2), status, error, 100.0, retry_scale=0.5)
    assert result.state == "pending"
    assert result.next_attempt_at is not None
    wait = RETRY_SCHEDULE[2] * 0.5
    assert 100.0 + wait <= result.next_attempt_at <= 100.0 + wait * 1.25
    assert result.error == (error or f"HTTP {status}")


def test_fails_for_good_when_the_schedule_is_used_up() -> None:
    result = outcome(due(attempts=len(RETRY_SCHEDULE)), 503, None, 100.0)
    assert (result.state, result.next_attempt_at) == ("failed", None)


def test_schedule_spans_at_least_a_day_whatever_the_jitter() -> None:
    # Jitter only stretches waits, so the shortest schedule is the nominal one.
    shortest = sum(next_attempt_delay(n, random.Random(seed)) or 0 for seed, n in enumerate(range(1, 13)))
    assert sum(RETRY_SCHEDULE) >= 24 * 3600
    assert shortest >= sum(RETRY_SCHEDULE)


# --- the worker against a real store and receiver ----------------------------------------------


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "asg.sqlite3")
    yield s
    s.close()


def queue(store: SQLiteStore, url: str, count: int) -> tuple[str, list[NewDelivery]]:
    now = time.time()
    webhook_id = new_id("whk", now)
    sealed = seal_webhook_secret(SEALER, webhook_id, SECRET)
    hook = store.create_webhook(webhook_id, "cus_1", WebhookSpec(url, SECRET, EVENT_TYPES), sealed, now)
    deliveries = [
        NewDelivery(
            f"dlv_{hook.webhook_id}_{i}",
            hook.webhook_id,
            f"evt_{i}",
            "task.verified",
            orjson.dumps({"id": f"evt_{i}", "n": i}),
        )
        for i in range(count)
    ]
    store.fan_out([], deliveries, time.time())
    return hook.webhook_id, deliveries


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def settings(**changes: object) -> Settings:
    # The receivers here are plain http:// on 127.0.0.1: what development mode allows.
    base = Settings(allow_private_urls=True, dev_mode=True, webhook_retry_scale=0.001, webhook_timeout=1.0)
    return base.with_overrides(**changes)


@pytest.mark.asyncio
async def test_worker_posts_signed_stored_payloads(store: SQLiteStore) -> None:
    receiver = Receiver().start()
    try:
        webhook_id, queued = queue(store, receiver.url, 20)
        worker = WebhookWorker(store, settings(webhook_concurrency=4), SEALER)
        await worker.start()
        try:
            await until(
                lambda: all(d.state == "delivered" for d in store.list_deliveries("cus_1", webhook_id, 50))
            )
        finally:
            await worker.stop()
    finally:
        receiver.stop()
    by_id = {r.headers["ASG-Delivery"]: r for r in receiver.requests}
    assert sorted(by_id) == sorted(d.delivery_id for d in queued)
    for d in queued:
        request = by_id[d.delivery_id]
        assert request.body == d.payload
        assert verify_webhook_signature(
            request.body, request.headers["ASG-Signature"], SECRET
        ) == orjson.loads(d.payload)
        assert request.headers["ASG-Event"] == "task.verified"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == USER_AGENT


@pytest.mark.asyncio
async def test_worker_retries_until_2xx_and_deactivates_on_410(store: SQLiteStore) -> None:
    flaky = Receiver(script=lambda n: (503, 0.0) if n <= 2 else (200, 0.0)).start()
    gone = Receiver(script=lambda n: (410, 0.0)).start()
    try:
        flaky_id, _ = queue(store, flaky.url, 1)
        gone_id, _ = queue(store, gone.url, 1)
        worker = WebhookWorker(store, settings(), SEALER)
        await worker.start()
        try:
            await until(lambda: store.list_deliveries("cus_1", flaky_id, 5)[0].state == "delivered")
            await until(lambda: store.list_deliveries("cus_1", gone_id, 5)[0].state == "abandoned")
        finally:
            await worker.stop()
    finally:
        flaky.stop()
        gone.stop()
    (delivered,) = store.list_deliveries("cus_1", flaky_id, 5)
    assert (delivered.attempts, delivered.last_status) == (3, 200)
    assert len(flaky.requests) == 3
    assert len({r.headers["ASG-Delivery"] for r in flaky.requests}) == 1
    assert {h.webhook_id: h.active for h in store.list_webhooks("cus_1")} == {flaky_id: True, gone_id: False}


@pytest.mark.asyncio
async def test_refused_url_is_a_failed_attempt(store: SQLiteStore) -> None:
    webhook_id, _ = queue(store, "https://127.0.0.1:9/hook", 1)
    worker = WebhookWorker(store, settings(allow_private_urls=False, webhook_retry_scale=1.0), SEALER)
    await worker.start()
    try:
        await until(lambda: store.list_deliveries("cus_1", webhook_id, 5)[0].attempts == 1)
    finally:
        await worker.stop()
    (record,) = store.list_deliveries("cus_1", webhook_id, 5)
    assert record.state == "pending"
    assert record.last_error is not None and "private or loopback" in record.last_error
    assert record.next_attempt_at is not None and record.next_attempt_at > time.time() + 5


@pytest.mark.asyncio
async def test_without_dev_mode_an_http_delivery_is_a_failed_attempt(store: SQLiteStore) -> None:
    # A plain http:// URL stored before (or by a core in development mode) is not called by a
    # core without it: the attempt fails saying why, and the receiver sees nothing.
    receiver = Receiver().start()
    try:
        webhook_id, _ = queue(store, receiver.url, 1)
        worker = WebhookWorker(store, settings(dev_mode=False, webhook_retry_scale=1.0), SEALER)
        await worker.start()
        try:
            await until(lambda: store.list_deliveries("cus_1", webhook_id, 5)[0].attempts == 1)
        finally:
            await worker.stop()
        (record,) = store.list_deliveries("cus_1", webhook_id, 5)
        assert record.last_error is not None and "must be an https URL" in record.last_error
        assert receiver.requests == []
    finally:
        receiver.stop()
