"""Signed values: the session cookie and the pass token (HMAC-SHA256, constant-time checks).

A pass token carries hashes of what it is bound to (session, user agent, network, host, API
key) and its expiry; `verify_pass` recomputes each from the request and checks them all, with
no early return that would tell which one failed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

KID = "k1"  # key id carried in each token, so the secret can be rotated later


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def sign(secret: bytes, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps({**payload, "kid": KID}, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(secret: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token this secret signed, else None."""
    body, _, mac = token.partition(".")
    try:
        want = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    return payload if isinstance(payload, dict) and payload.get("kid") == KID else None


def session_cookie(secret: bytes, sid: str) -> str:
    mac = hmac.new(secret, b"sid:" + sid.encode(), hashlib.sha256).digest()[:16]
    return f"{sid}.{_b64(mac)}"


def session_from_cookie(secret: bytes, value: str) -> str | None:
    sid, _, mac = value.partition(".")
    want = hmac.new(secret, b"sid:" + sid.encode(), hashlib.sha256).digest()[:16]
    try:
        return sid if sid and hmac.compare_digest(want, _unb64(mac)) else None
    except ValueError:
        return None


def issue_pass(
    secret: bytes, *, sid: str, key_id: str, host: str, ua: str, net: str, cid: str, ttl: int
) -> str:
    now = int(time.time())
    return sign(
        secret,
        {"sid": sid, "key": key_id, "host": digest(host), "ua": digest(ua), "net": digest(net),
         "cid": cid, "iat": now, "exp": now + ttl},
    )  # fmt: skip


def verify_pass(
    secret: bytes, token: str, *, sid: str, key_id: str, host: str, ua: str, net: str
) -> dict[str, Any] | None:
    """The token's payload when it is genuine, unexpired and bound to exactly this request."""
    payload = unsign(secret, token)
    if payload is None:
        return None
    checks = [
        hmac.compare_digest(str(payload.get("sid", "")), sid),
        hmac.compare_digest(str(payload.get("key", "")), key_id),
        hmac.compare_digest(str(payload.get("host", "")), digest(host)),
        hmac.compare_digest(str(payload.get("ua", "")), digest(ua)),
        hmac.compare_digest(str(payload.get("net", "")), digest(net)),
        isinstance(payload.get("exp"), int) and payload["exp"] > time.time(),
    ]
    return payload if all(checks) else None
