"""Webhook signatures: ``verify_webhook_signature`` and ``sign_webhook``, and the receivers of
``docs/webhooks.md`` run as written."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_gateway import ASGError, WebhookSignatureError, sign_webhook, verify_webhook_signature

SECRET = "whsec_test_secret"
T = 1_775_736_000  # 2026-04-09T12:00:00Z
EVENT: dict[str, Any] = {
    "id": "evt_01",
    "type": "task.verified",
    "created_at": "2026-04-09T12:00:00Z",
    "data": {"task_id": "tsk_01", "status": "verified", "consensus_label": "cat"},
}
BODY = json.dumps(EVENT).encode()
DOCS = Path(__file__).parents[2] / "docs" / "webhooks.md"


def v1(body: bytes = BODY, secret: str = SECRET, t: int = T) -> str:
    """The v1 signature, computed here from the documented scheme rather than by the SDK."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_valid_signature_returns_the_event() -> None:
    assert verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, T), SECRET, now=T) == EVENT


def test_sign_webhook_follows_the_documented_scheme() -> None:
    assert sign_webhook(BODY, SECRET, T) == f"t={T},v1={v1()}"


def test_verify_accepts_a_header_built_from_the_documented_scheme() -> None:
    assert verify_webhook_signature(BODY, f"t={T},v1={v1()}", SECRET, now=T) == EVENT


def test_error_is_an_asg_error() -> None:
    assert issubclass(WebhookSignatureError, ASGError)


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b'"cat"', b'"dog"'),
        BODY + b" ",
        json.dumps(EVENT, indent=2).encode(),  # same JSON, other bytes
        b"",
    ],
)
def test_raise_on_tampered_body(body: bytes) -> None:
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(body, sign_webhook(BODY, SECRET, T), SECRET, now=T)


def test_raise_on_wrong_secret() -> None:
    header = sign_webhook(BODY, "whsec_other", T)
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(BODY, header, SECRET, now=T)


def test_raise_on_tampered_timestamp() -> None:
    header = sign_webhook(BODY, SECRET, T).replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(BODY, header, SECRET, now=T + 60)


def test_signature_is_checked_before_the_timestamp() -> None:
    # A forgery learns nothing about the clock: its error is about the signature.
    header = sign_webhook(BODY, "whsec_other", T)
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(BODY, header, SECRET, now=T + 10_000)


@pytest.mark.parametrize("tolerance", [300, 5])
def test_raise_on_stale_signature(tolerance: int) -> None:
    header = sign_webhook(BODY, SECRET, T)
    message = rf"timestamp too old: signed {tolerance + 1} s ago, tolerance is {tolerance} s"
    with pytest.raises(WebhookSignatureError, match=message):
        verify_webhook_signature(BODY, header, SECRET, tolerance, now=T + tolerance + 1)


@pytest.mark.parametrize("tolerance", [300, 5])
def test_raise_on_future_signature(tolerance: int) -> None:
    header = sign_webhook(BODY, SECRET, T)
    message = rf"timestamp too far in the future: {tolerance + 1} s ahead, tolerance is {tolerance} s"
    with pytest.raises(WebhookSignatureError, match=message):
        verify_webhook_signature(BODY, header, SECRET, tolerance, now=T - tolerance - 1)


@pytest.mark.parametrize("tolerance", [300, 5])
def test_accept_timestamps_up_to_the_tolerance_either_way(tolerance: int) -> None:
    header = sign_webhook(BODY, SECRET, T)
    for delta in (0, tolerance - 1, tolerance, -(tolerance - 1), -tolerance):
        assert verify_webhook_signature(BODY, header, SECRET, tolerance, now=T + delta) == EVENT


def test_a_fraction_of_a_second_past_the_tolerance_is_refused() -> None:
    header = sign_webhook(BODY, SECRET, T)
    with pytest.raises(WebhookSignatureError, match=r"signed 300\.5 s ago, tolerance is 300 s"):
        verify_webhook_signature(BODY, header, SECRET, now=T + 300.5)


def test_default_tolerance_is_300_seconds_of_the_real_clock() -> None:
    now = int(time.time())
    assert verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, now - 290), SECRET) == EVENT
    with pytest.raises(WebhookSignatureError, match="timestamp too old"):
        verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, now - 310), SECRET)
    with pytest.raises(WebhookSignatureError, match="timestamp too far in the future"):
        verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, now + 310), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        f"t={T},v1={v1(secret='whsec_old')},v1={v1()}",
        f"t={T},v1={v1()},v1={v1(secret='whsec_old')}",
        f"v1={v1(secret='whsec_old')},t={T},v1={v1()}",
        f"v1={v1()},t={T}",
        f"t={T},v0=deadbeef,scheme=x,v1={v1()},v2=cafe",
        f" t={T} , v1={v1()} ",
        f"t={T},,v1={v1()},",
    ],
)
def test_any_matching_v1_passes_in_any_order_ignoring_unknown_keys(header: str) -> None:
    assert verify_webhook_signature(BODY, header, SECRET, now=T) == EVENT


def test_raise_when_no_v1_of_several_matches() -> None:
    header = f"t={T},v1={v1(secret='whsec_a')},v1={v1(secret='whsec_b')}"
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(BODY, header, SECRET, now=T)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing ASG-Signature header"),
        ("", "missing ASG-Signature header"),
        ("   ", "missing ASG-Signature header"),
        (f"v1={v1()}", "no t= timestamp"),
        ("garbage", "no t= timestamp"),
        (f"T={T},v1={v1()}", "no t= timestamp"),
        (f"t{T},v1={v1()}", "no t= timestamp"),
        (f"t={T},t={T},v1={v1()}", "more than one t= timestamp"),
        (f"t=,v1={v1()}", "t='' is not unix seconds"),
        (f"t=abc,v1={v1()}", "t='abc' is not unix seconds"),
        (f"t={T}.5,v1={v1()}", "is not unix seconds"),
        (f"t=-{T},v1={v1()}", "is not unix seconds"),
        (f"t=+{T},v1={v1()}", "is not unix seconds"),
        (f"t=1_775_736_000,v1={v1()}", "is not unix seconds"),
        (f"t=١٧٧٥٧٣٦٠٠٠,v1={v1()}", r"t='\u0661\u0667\u0667"),  # Arabic-Indic digits
        ("t=" + "9" * 5000 + f",v1={v1()}", "t='99999999999999999999'... is not unix seconds"),
        (f"t={T}", "no v1= signature"),
        (f"t={T},v1=", "no v1= signature"),
        (f"t={T},v0={v1()}", "no v1= signature"),
        (f"t={T},v1{v1()}", "no v1= signature"),
    ],
)
def test_raise_on_malformed_header(header: str | None, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=re.escape(message)) as caught:
        verify_webhook_signature(BODY, header, SECRET, now=T)
    assert caught.value.message.isascii()
    assert len(caught.value.message) < 200  # a huge header is not echoed back


@pytest.mark.parametrize("candidate", ["é" * 64, v1().upper(), v1()[:-1], v1() + "0", "0" * 64])
def test_near_miss_and_non_ascii_signatures_do_not_match(candidate: str) -> None:
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(BODY, f"t={T},v1={candidate}", SECRET, now=T)


def test_str_and_bytes_bodies_verify_alike() -> None:
    event = {**EVENT, "data": {"task_id": "tsk_01", "consensus_label": "café ☕"}}
    text = json.dumps(event, ensure_ascii=False)
    header = sign_webhook(text.encode(), SECRET, T)
    assert verify_webhook_signature(text, header, SECRET, now=T) == event
    assert verify_webhook_signature(text.encode(), header, SECRET, now=T) == event


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not valid JSON despite a valid signature"),
        (b'{"id": "evt_01"', "body is not valid JSON despite a valid signature"),
        (b"\xff\xfe\xfa", "body is not valid JSON despite a valid signature"),
        (b"[1, 2]", "body is JSON list, not an event object"),
        (b'"evt_01"', "body is JSON str, not an event object"),
    ],
)
def test_raise_on_a_signed_body_that_is_not_an_event(body: bytes, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=re.escape(message)):
        verify_webhook_signature(body, sign_webhook(body, SECRET, T), SECRET, now=T)


def test_invalid_json_is_not_parsed_before_the_signature_is_checked() -> None:
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_webhook_signature(b"not json", sign_webhook(b"not json", "whsec_other", T), SECRET, now=T)


@pytest.mark.parametrize("tolerance", [0, -1, -300])
def test_tolerance_must_be_positive(tolerance: int) -> None:
    with pytest.raises(ValueError, match="tolerance must be > 0 seconds"):
        verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, T), SECRET, tolerance, now=T)


def test_an_infinite_tolerance_cannot_turn_the_check_off() -> None:
    with pytest.raises(TypeError, match="tolerance must be an int"):
        verify_webhook_signature(BODY, sign_webhook(BODY, SECRET, 0), SECRET, float("inf"))  # type: ignore[arg-type]


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        sign_webhook(BODY, "", T)
    with pytest.raises(ValueError, match="secret is empty"):
        verify_webhook_signature(BODY, f"t={T},v1={v1(secret='')}", "", now=T)


def test_sign_webhook_refuses_a_negative_timestamp() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        sign_webhook(BODY, SECRET, -1)


# The receivers of docs/webhooks.md, run as written.


def docs_snippet(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    return next(block for block in blocks if marker in block)


def run_snippet(marker: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ASG_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "docs_webhooks"}  # not __main__: no serve_forever()
    exec(docs_snippet(marker), namespace)
    return namespace


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The docs' stdlib receiver on 127.0.0.1, port 0; yields its URL and the events it handled."""
    namespace = run_snippet("BaseHTTPRequestHandler", monkeypatch)
    events: list[dict[str, Any]] = []
    namespace["handle"] = events.append
    server = HTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks/asg", events
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def headers(signature: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "ASG-Signature": signature,
        "ASG-Event": EVENT["type"],
        "ASG-Delivery": "test-delivery-1",
    }


def test_stdlib_receiver_accepts_a_signed_delivery_over_http(
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, events = receiver
    signature = sign_webhook(BODY, SECRET, int(time.time()))
    response = httpx.post(url, content=BODY, headers=headers(signature))
    assert response.status_code == 200
    assert events == [EVENT]


@pytest.mark.parametrize(
    ("body", "secret", "age", "reason"),
    [
        (BODY, "whsec_other", 0, "no v1 signature matches"),
        (BODY.replace(b"cat", b"dog"), SECRET, 0, "no v1 signature matches"),
        (BODY, SECRET, 3600, "timestamp too old"),
        (BODY, SECRET, -3600, "timestamp too far in the future"),
    ],
)
def test_stdlib_receiver_refuses_a_bad_delivery_over_http(
    receiver: tuple[str, list[dict[str, Any]]], body: bytes, secret: str, age: int, reason: str
) -> None:
    url, events = receiver
    signature = sign_webhook(BODY, secret, int(time.time()) - age)
    response = httpx.post(url, content=body, headers=headers(signature))
    assert response.status_code == 400
    assert reason in response.reason_phrase
    assert events == []


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing ASG-Signature header"),
        (b"t=\xd9\xa1\xd9\xa7,v1=00", "malformed ASG-Signature header: t="),  # UTF-8 Arabic digits
        (b"v1=\xc3\xa9", "malformed ASG-Signature header: no t= timestamp"),
    ],
)
def test_stdlib_receiver_refuses_a_missing_or_malformed_header_over_http(
    receiver: tuple[str, list[dict[str, Any]]], signature: bytes | None, reason: str
) -> None:
    url, events = receiver
    sent = {b"Content-Type": b"application/json"}
    if signature is not None:
        sent[b"ASG-Signature"] = signature
    response = httpx.post(url, content=BODY, headers=sent)
    assert response.status_code == 400
    assert response.reason_phrase.startswith(reason)
    assert events == []


@pytest.mark.asyncio
async def test_fastapi_receiver_accepts_good_and_refuses_bad_deliveries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = run_snippet("FastAPI()", monkeypatch)
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        good = sign_webhook(BODY, SECRET, int(time.time()))
        response = await client.post("/webhooks/asg", content=BODY, headers=headers(good))
        assert response.status_code == 200
        assert response.json() == {"received": True}
        bad = sign_webhook(BODY, "whsec_other", int(time.time()))
        response = await client.post("/webhooks/asg", content=BODY, headers=headers(bad))
        assert response.status_code == 400
        assert "no v1 signature matches" in response.json()["detail"]


def test_docs_client_snippet_signs_what_the_receiver_verifies(
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, events = receiver
    exec(docs_snippet("sign_webhook(body").replace("http://localhost:8000/", url), {"__name__": "docs"})
    assert [event["id"] for event in events] == ["evt_test"]
