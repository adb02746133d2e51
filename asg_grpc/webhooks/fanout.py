"""Fan-out: turn outbox events into deliveries, one per webhook that should hear of each.

An event's body is rendered once, when it is fanned out, and stored with each of its deliveries:
every attempt of every delivery then sends (and signs) exactly the same bytes.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from asg_grpc.domain import ids
from asg_grpc.store.areas import Webhooks
from asg_grpc.store.webhook_records import EventRecord, HookTarget, NewDelivery
from asg_grpc.wire.events import EventSubjects, event_data, render

log = logging.getLogger("asg.webhooks")


class FanOutStore(Webhooks, EventSubjects, Protocol):
    """The outbox and deliveries, and the subjects an event's body is rendered from."""


def targets(event: EventRecord, hooks: list[HookTarget]) -> list[HookTarget]:
    """The active hooks of the event's customer that get it. A task that named a callback_url
    sends its events to that hook alone; other events go to every hook subscribed to the type."""
    subscribed = [h for h in hooks if event.event_type in h.events]
    if event.callback_url is not None:
        return [h for h in subscribed if h.callback_url == event.callback_url]
    return subscribed


def fan_out_once(store: FanOutStore, limit: int, now: float | None = None) -> int:
    """Fan out up to `limit` pending events in one store transaction; returns how many."""
    events = store.pending_events(limit)
    if not events:
        return 0
    now = time.time() if now is None else now
    hooks_of: dict[str, list[HookTarget]] = {}
    deliveries: list[NewDelivery] = []
    for event in events:
        if event.customer_id not in hooks_of:
            hooks_of[event.customer_id] = store.hook_targets(event.customer_id)
        chosen = targets(event, hooks_of[event.customer_id])
        if not chosen:
            continue
        try:
            data = event_data(store, event)
            payload = None if data is None else render(event, data)
        except Exception:  # one bad event must not stop every other one behind it
            log.exception(
                "rendering a webhook event failed; it is skipped", extra={"event_id": event.event_id}
            )
            continue
        if payload is None:
            log.warning(
                "webhook event has nothing to send",
                extra={"event_id": event.event_id, "type": event.event_type, "subject": event.subject_id},
            )
            continue
        for hook in chosen:
            deliveries.append(
                NewDelivery(
                    ids.new_id("dlv", now), hook.webhook_id, event.event_id, event.event_type, payload
                )
            )
    store.fan_out([e.seq for e in events], deliveries, now)
    return len(events)
