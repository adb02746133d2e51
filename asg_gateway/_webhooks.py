"""Webhook signatures: verify a delivery before trusting it (the scheme of stripe ``_webhook.py``).

A delivery carries ``ASG-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` where each ``v1`` is
HMAC-SHA256, keyed with the endpoint's secret, of ``b"<t>." + raw body``. Several ``v1`` values
appear while a secret is being rotated; one match is enough. The timestamp is signed too, so a
captured delivery cannot be replayed once it is older than the tolerance.

Unlike Stripe there is no way to skip the timestamp check: ``tolerance`` must be positive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from ._errors import WebhookSignatureError

SCHEME = "v1"
DEFAULT_TOLERANCE = 300


def _signature(raw_body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + raw_body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _check_secret(secret: str) -> None:
    # An empty key is a configuration mistake (an unset variable), and anyone can sign with it.
    if not secret:
        raise ValueError("the webhook secret is empty")


def sign_webhook(body: bytes, secret: str, timestamp: int) -> str:
    """The ``ASG-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds).

    The server signs deliveries this way; use it to test your receiver.
    """
    _check_secret(secret)
    if timestamp < 0:
        raise ValueError(f"timestamp must be non-negative unix seconds, got {timestamp}")
    return f"t={timestamp},{SCHEME}={_signature(body, secret, timestamp)}"


def _parse_header(header: str | None) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header; unknown keys are ignored."""
    if not header or not header.strip():
        raise WebhookSignatureError("missing ASG-Signature header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if sep and key == "t":
            timestamps.append(value)
        elif sep and key == SCHEME and value:
            signatures.append(value)
    if not timestamps:
        raise WebhookSignatureError("malformed ASG-Signature header: no t= timestamp")
    if len(timestamps) > 1:
        raise WebhookSignatureError("malformed ASG-Signature header: more than one t= timestamp")
    text = timestamps[0]
    # int() would also take "+1", " 1", "1_000" and non-ASCII digits; only plain digits are valid.
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        # ascii(): messages stay ASCII (receivers put them in status lines) and short.
        shown = ascii(text[:20]) + ("..." if len(text) > 20 else "")
        raise WebhookSignatureError(f"malformed ASG-Signature header: t={shown} is not unix seconds")
    if not signatures:
        raise WebhookSignatureError(f"malformed ASG-Signature header: no {SCHEME}= signature")
    return int(text), signatures


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def verify_webhook_signature(
    body: bytes | str,
    header: str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's ``ASG-Signature`` header and return its decoded JSON event.

    ``body`` must be the raw request body exactly as received (a ``str`` is encoded as UTF-8);
    JSON that was parsed and dumped again no longer matches. The signed timestamp may differ
    from ``now`` (default: the current time) by at most ``tolerance`` seconds either way.
    Raises ``WebhookSignatureError`` for a delivery to refuse, ``ValueError`` for a
    non-positive ``tolerance`` or an empty ``secret``, ``TypeError`` for a ``tolerance`` that is
    not an ``int`` (``float("inf")`` would turn the check off).
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        raise TypeError(f"tolerance must be an int number of seconds, got {tolerance!r}")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0 seconds (the check cannot be disabled), got {tolerance}")
    _check_secret(secret)
    raw = body.encode() if isinstance(body, str) else body

    timestamp, signatures = _parse_header(header)
    expected = _signature(raw, secret, timestamp).encode()
    # Bytes, not str: compare_digest refuses non-ASCII str, and the header is attacker-controlled.
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
        raise WebhookSignatureError(
            f"no {SCHEME} signature matches the body and timestamp (wrong secret, or a modified body)"
        )

    # After the signature, so these messages describe only genuine deliveries: a replay or a clock.
    age = (time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise WebhookSignatureError(
            f"timestamp too old: signed {_seconds(age)} s ago, tolerance is {tolerance} s"
        )
    if -age > tolerance:
        raise WebhookSignatureError(
            f"timestamp too far in the future: {_seconds(-age)} s ahead, tolerance is {tolerance} s"
        )

    try:
        event = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for non-UTF-8 bytes
        raise WebhookSignatureError(f"body is not valid JSON despite a valid signature: {exc}") from exc
    if not isinstance(event, dict):
        raise WebhookSignatureError(f"body is JSON {type(event).__name__}, not an event object")
    return event
