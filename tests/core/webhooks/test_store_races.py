"""Deliveries to a webhook that is gone stay gone, whatever attempts were in flight."""

from __future__ import annotations

import time

from asg_grpc.domain.customers import Registration
from asg_grpc.domain.webhooks import EVENT_TYPES, WebhookSpec
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.webhook_records import AttemptResult, NewDelivery


def queued(store: SQLiteStore, *names: str) -> tuple[str, str]:
    customer = store.create_customer(
        Registration("c", "c@example.com"),
        tier="sandbox",
        label_quota=10,
        key_hash="h",
        key_hint="x",
        now=1.0,
    )
    spec = WebhookSpec("https://h.example/x", "secret-123", EVENT_TYPES)
    hook = store.create_webhook("whk_1", customer.customer_id, spec, b"sealed secret-123", 1.0)
    store.fan_out(
        [], [NewDelivery(n, hook.webhook_id, f"evt_{n}", "task.verified", b"{}") for n in names], 1.0
    )
    return customer.customer_id, hook.webhook_id


def retry(delivery_id: str, webhook_id: str, status: int, deactivate: bool = False) -> AttemptResult:
    state = "abandoned" if deactivate else "pending"
    return AttemptResult(
        delivery_id, webhook_id, status, None, state, None if deactivate else 2.0, deactivate
    )


def states(store: SQLiteStore) -> dict[str, str]:
    return dict(store._db.execute("SELECT delivery_id, state FROM deliveries").fetchall())


def test_an_attempt_ending_after_the_webhook_was_deleted_does_not_revive_it(store: SQLiteStore) -> None:
    customer_id, hook_id = queued(store, "dlv_1")
    store.delete_webhook(customer_id, hook_id, 2.0)  # while dlv_1 is in flight
    store.record_attempts([retry("dlv_1", hook_id, 500)], 3.0)
    assert states(store) == {"dlv_1": "abandoned"}
    assert store.due_deliveries(time.time(), 10, set()) == []


def test_a_410_stops_the_other_deliveries_in_flight_to_that_webhook(store: SQLiteStore) -> None:
    _, hook_id = queued(store, "dlv_1", "dlv_2")
    store.record_attempts([retry("dlv_1", hook_id, 410, deactivate=True), retry("dlv_2", hook_id, 503)], 3.0)
    assert states(store) == {"dlv_1": "abandoned", "dlv_2": "abandoned"}
    assert store.due_deliveries(time.time(), 10, set()) == []


def test_no_delivery_is_queued_for_a_webhook_deleted_before_fan_out(store: SQLiteStore) -> None:
    customer_id, hook_id = queued(store)
    store.delete_webhook(customer_id, hook_id, 2.0)
    store.fan_out([], [NewDelivery("dlv_9", hook_id, "evt_9", "task.verified", b"{}")], 3.0)
    assert states(store) == {}
