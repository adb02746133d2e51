"""What every store does with webhooks: registrations with their limit and one URL each, events
written with the task changes they report (only for customers with a webhook), fanned out to
deliveries, attempts recorded, deletion and 410 Gone abandoning what is pending; two stores
registering at once keep the limit."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from asg_grpc.domain.errors import Conflict, NotFound, ValidationError
from asg_grpc.domain.webhooks import MAX_WEBHOOKS, WebhookSpec
from asg_grpc.store.task_records import Submission
from asg_grpc.store.webhook_records import AttemptResult, NewDelivery
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_labels import deciding, open_task, submit
from tests.store.contract.test_tasks import spec

EVENTS = ("task.verified", "task.failed", "task.cancelled")


def hook(store: object, customer_id: str, n: int = 0, webhook_id: str | None = None) -> str:
    webhook_id = webhook_id or f"whk_{customer_id[-6:]}_{n}"
    spec_ = WebhookSpec(f"https://hooks.example.com/{n}", "s3cret-s3cret-s3cret", EVENTS)
    store.create_webhook(webhook_id, customer_id, spec_, b"sealed-" + webhook_id.encode(), time.time())  # type: ignore[attr-defined]
    return webhook_id


def test_webhooks_register_once_per_url_up_to_the_limit(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    other = register(store, email="bob@example.com", key="key-bob")
    first = hook(store, customer_id, 0)
    with pytest.raises(Conflict):
        hook(open_store(), customer_id, 0, webhook_id="whk_again")
    hook(store, other, 0)  # another customer may use the same URL
    for n in range(1, MAX_WEBHOOKS):
        hook(store, customer_id, n)
    with pytest.raises(Conflict):
        hook(store, customer_id, MAX_WEBHOOKS)
    listed = open_store().list_webhooks(customer_id)
    assert [w.webhook_id for w in listed][:2] == [first, f"whk_{customer_id[-6:]}_1"]
    assert len(listed) == MAX_WEBHOOKS and all(w.active for w in listed)
    assert listed[0].events == EVENTS and listed[0].callback_url == "https://hooks.example.com/0"
    with pytest.raises(NotFound):
        store.delete_webhook(other, first, time.time())
    store.delete_webhook(customer_id, first, time.time())
    with pytest.raises(NotFound):
        store.delete_webhook(customer_id, first, time.time())
    assert len(store.list_webhooks(customer_id)) == MAX_WEBHOOKS - 1
    hook(store, customer_id, 0, webhook_id="whk_back")  # room again, and the URL is free


def test_a_tasks_callback_url_must_be_a_registered_webhook(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    hook(store, customer_id, 7)
    with_hook = replace(spec(1), callback_url="https://hooks.example.com/7")
    without = replace(spec(2), callback_url="https://hooks.example.com/8")
    [ok, refused] = store.submit(
        [Submission(customer_id, [with_hook], None), Submission(customer_id, [without], None)], time.time()
    )
    assert isinstance(refused, ValidationError) and refused.field == "callback_url"
    assert ok[0].task.spec.callback_url == "https://hooks.example.com/7"


def test_decisions_become_events_fanned_out_to_deliveries(open_store: OpenStore) -> None:
    store = open_store()
    quiet = register(store, email="quiet@example.com", key="key-quiet")
    [unheard] = submit(store, quiet)
    store.record_labeling(deciding(open_task(store, unheard), ["yes"] * 3, time.time()))
    assert store.pending_events(10) == []  # no webhook, no outbox record
    customer_id = register(store)
    webhook_id = hook(store, customer_id)
    [decided, cancelled] = submit(store, customer_id, 2)
    store.record_labeling(deciding(open_task(store, decided), ["yes"] * 3, time.time()))
    store.cancel_task(customer_id, cancelled, time.time())
    events = open_store().pending_events(10)
    assert [(e.event_type, e.subject_id, e.customer_id) for e in events] == [
        ("task.verified", decided, customer_id),
        ("task.cancelled", cancelled, customer_id),
    ]
    assert events[0].seq < events[1].seq and events[0].callback_url is None
    now = time.time()
    deliveries = [
        NewDelivery(f"dlv_{i}", webhook_id, e.event_id, e.event_type, b"{}") for i, e in enumerate(events)
    ]
    store.fan_out([e.seq for e in events], deliveries, now)
    assert store.pending_events(10) == []
    due = open_store().due_deliveries(now + 1, 10, exclude={"dlv_1"})
    assert [(d.delivery_id, d.callback_url, d.sealed_secret, d.attempts) for d in due] == [
        ("dlv_0", "https://hooks.example.com/0", b"sealed-" + webhook_id.encode(), 0)
    ]
    store.record_attempts(
        [
            AttemptResult("dlv_0", webhook_id, 200, None, "delivered", None),
            AttemptResult("dlv_1", webhook_id, 500, "server error", "pending", now + 10),
        ],
        now + 1,
    )
    assert store.due_deliveries(now + 2, 10, exclude=set()) == []
    assert [d.delivery_id for d in store.due_deliveries(now + 11, 10, exclude=set())] == ["dlv_1"]
    listed = open_store().list_deliveries(customer_id, webhook_id, 10)
    assert [
        (d.delivery_id, d.state, d.attempts, d.last_status)
        for d in sorted(listed, key=lambda d: d.delivery_id)
    ] == [
        ("dlv_0", "delivered", 1, 200),
        ("dlv_1", "pending", 1, 500),
    ]
    assert {d.delivered_at for d in listed if d.state == "delivered"} == {now + 1}
    # 410 Gone: the webhook stops, what was pending for it is abandoned.
    store.record_attempts(
        [AttemptResult("dlv_1", webhook_id, 410, "gone", "failed", None, deactivate_webhook=True)], now + 12
    )
    assert [w.active for w in store.list_webhooks(customer_id)] == [False]
    assert store.hook_targets(customer_id) == []


def test_deleting_a_webhook_abandons_its_pending_deliveries(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    webhook_id = hook(store, customer_id)
    [task_id] = submit(store, customer_id)
    store.cancel_task(customer_id, task_id, time.time())
    [event] = store.pending_events(10)
    assert [t.webhook_id for t in store.hook_targets(customer_id)] == [webhook_id]
    now = time.time()
    store.fan_out(
        [event.seq], [NewDelivery("dlv_x", webhook_id, event.event_id, event.event_type, b"{}")], now
    )
    other = register(store, email="bob@example.com", key="key-bob")
    with pytest.raises(NotFound):
        store.list_deliveries(other, webhook_id, 10)
    open_store().delete_webhook(customer_id, webhook_id, now)
    assert store.due_deliveries(now + 1, 10, exclude=set()) == []
    with pytest.raises(NotFound):
        store.list_deliveries(customer_id, webhook_id, 10)


def test_two_stores_registering_at_once_keep_the_limit(open_store: OpenStore) -> None:
    customer_id = register(open_store())
    stores = [open_store(), open_store()]
    refused: list[int] = []
    barrier = threading.Barrier(2)

    def create(index: int) -> None:
        barrier.wait()
        for n in range(MAX_WEBHOOKS // 2 + 1):
            try:
                hook(stores[index], customer_id, 100 * index + n)
            except Conflict:
                refused.append(index)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refused) == 2
    assert len(stores[0].list_webhooks(customer_id)) == MAX_WEBHOOKS
