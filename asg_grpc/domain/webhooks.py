"""Webhooks: what a registration must hold, which events exist, how deliveries are signed and
retried. Pure rules; the delivery worker (asg_grpc/webhooks/) does the I/O."""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import check_call_url

EVENT_TYPES = (
    "task.verified",
    "task.settled",
    "task.failed",
    "task.cancelled",
    "task.expired",
    "job.completed",
    "job.failed",
)
MIN_SECRET = 8
MAX_SECRET = 256
MAX_WEBHOOKS = 20

# Seconds to wait after attempt N fails (N = 1, 2, ...): about 26 hours in all, so a receiver
# that is down for a day still gets everything. Each wait is stretched by up to 25 % at random
# (never shortened, so the whole schedule never drops below a day) to spread retries out.
RETRY_SCHEDULE = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 21600, 21600, 21600)
ATTEMPT_TIMEOUT = 10.0  # seconds one delivery attempt may take


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    callback_url: str
    secret: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Webhook:
    webhook_id: str
    customer_id: str
    callback_url: str
    events: tuple[str, ...]
    active: bool
    created_at: float


def validate_webhook(
    callback_url: str, secret: str, events: list[str], dev_mode: bool = False
) -> WebhookSpec:
    """`dev_mode` (Settings.dev_mode) lets callback_url be http:// to loopback."""
    if not callback_url:
        raise ValidationError("callback_url", "is required")
    check_call_url("callback_url", callback_url, dev_mode)
    if not secret:
        raise ValidationError("secret", "is required")
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ValidationError("secret", f"must be {MIN_SECRET} to {MAX_SECRET} characters")
    for i, event in enumerate(events):
        if event not in EVENT_TYPES:
            raise ValidationError(f"events[{i}]", f"must be one of {', '.join(EVENT_TYPES)}")
    return WebhookSpec(callback_url, secret, tuple(dict.fromkeys(events)) or EVENT_TYPES)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """`ASG-Signature`: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def next_attempt_delay(attempts: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None when they are used up."""
    if attempts < 1 or attempts > len(RETRY_SCHEDULE):
        return None
    jitter = (rng or random).uniform(1.0, 1.25)
    return RETRY_SCHEDULE[attempts - 1] * jitter
