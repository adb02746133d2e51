"""Records the webhook parts of the store hand out (see Store in base.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A state change some webhook should hear about, written with the change itself."""

    seq: int
    event_id: str
    event_type: str
    customer_id: str
    subject_id: str  # the task (or job) the event is about
    callback_url: str | None  # the task's own hook, if it named one
    created_at: float


@dataclass(frozen=True, slots=True)
class HookTarget:
    webhook_id: str
    callback_url: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    payload: bytes  # the exact body that will be signed and sent


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery_id: str
    webhook_id: str
    callback_url: str
    sealed_secret: bytes  # the webhook's signing secret, sealed to its webhook_id
    event_type: str
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None
    delivered_at: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class AttemptResult:
    delivery_id: str
    webhook_id: str
    status: int | None  # HTTP status, None when no answer came
    error: str | None
    state: str  # pending (retry at next_attempt_at) | delivered | failed | abandoned
    next_attempt_at: float | None
    deactivate_webhook: bool = False  # the endpoint answered 410 Gone
