"""Customers and their API keys. A key is shown once; only its SHA-256 is ever stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from asg_grpc.domain.errors import ValidationError

MAX_NAME = 200
MAX_EMAIL = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KEY_PREFIXES = {"sandbox": "sk_sandbox_", "live": "sk_live_"}
# Rotation (docs/api.md, "Rotating a key"): the calling key keeps working this long by default,
# so deployments can switch over; 0 retires it at once (a leaked key).
KEY_GRACE_SECONDS = 86_400
MAX_KEY_GRACE_SECONDS = 7 * 86_400
MAX_ACTIVE_KEYS = 5


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    email: str


@dataclass(slots=True)
class Customer:
    customer_id: str
    name: str
    email: str
    tier: str
    label_quota: int
    labels_reserved: int
    key_hint: str
    created_at: float
    # The customer's default consensus method for tasks that name none; None: the deployment's.
    consensus_method: str | None = None

    @property
    def quota_remaining(self) -> int:
        return max(0, self.label_quota - self.labels_reserved)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What anyone is ever shown of a key: its hint and its dates (never the key)."""

    key_hint: str
    created_at: float
    expires_at: float | None  # None: until rotated away


def key_grace(seconds: int | None) -> float:
    """How long a rotated-away key stays valid; `grace_seconds` as the caller sent it."""
    if seconds is None:
        return KEY_GRACE_SECONDS
    if not 0 <= seconds <= MAX_KEY_GRACE_SECONDS:
        raise ValidationError("grace_seconds", f"must be between 0 and {MAX_KEY_GRACE_SECONDS}")
    return seconds


def validate_registration(name: str, email: str) -> Registration:
    name = name.strip()
    if not name:
        raise ValidationError("name", "is required")
    if len(name) > MAX_NAME:
        raise ValidationError("name", f"must be at most {MAX_NAME} characters")
    email = email.strip()
    if not email:
        raise ValidationError("email", "is required")
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise ValidationError("email", "must be a valid email address")
    return Registration(name=name, email=email.lower())


def new_api_key(environment: str = "sandbox") -> str:
    return KEY_PREFIXES[environment] + secrets.token_urlsafe(32)


def environment_of(key: str) -> str:
    """The environment a key was issued for, so its replacement is issued for the same one."""
    return next((env for env, prefix in KEY_PREFIXES.items() if key.startswith(prefix)), "sandbox")


def hash_token(token: str) -> str:
    """What is stored of an API key or a worker token (both 256-bit random secrets, so a
    plain SHA-256 is enough: there is nothing to brute-force)."""
    return hashlib.sha256(token.encode()).hexdigest()


def key_hint(key: str) -> str:
    """Enough of a key to recognise it in the console, never enough to use it."""
    return f"{key[:7]}…{key[-4:]}"
