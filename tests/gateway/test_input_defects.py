"""Issue 15's gateway input defects, over real HTTP: each answered a 500, a 504 or a silent
misreading before; each now gets the documented 4xx/503 naming what the client sent."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_stack, register
from tests.gateway.bodies import TASK


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/v1/webhooks/whk_nope/deliveries?limit=2147483648", "limit"),
        ("/v1/webhooks/whk_nope/deliveries?limit=0", "limit"),
        ("/v1/jobs?limit=201", "limit"),
        ("/v1/tasks?limit=9223372036854775808", "limit"),
        ("/v1/chain/headers?count=0", "count"),
        ("/v1/chain/headers?count=2001", "count"),
        ("/v1/chain/headers?count=4294967296", "count"),
        ("/v1/chain/headers?from=9223372036854775808", "from"),
        ("/v1/billing/usage?month=9999-12", "month"),
        ("/v1/billing/usage?month=0000-01", "month"),
        ("/v1/billing/usage?month=2026-13", "month"),
    ],
)
def test_a_query_parameter_out_of_range_is_400_naming_it(
    http: httpx.Client, auth: dict[str, str], path: str, parameter: str
) -> None:
    reply = http.get(path, headers=auth)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(f"{parameter} "), reply.text


def test_an_error_names_from_as_the_client_sent_it(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.get("/v1/chain/headers?from=-1", headers=auth)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error.startswith("from ") and "from_height" not in error


@pytest.mark.parametrize(
    "path", ["/v1/tasks", "/v1/tasks/batch", "/v1/customers", "/v1/webhooks", "/v1/jobs"]
)
def test_a_body_sent_as_text_plain_is_415(http: httpx.Client, auth: dict[str, str], path: str) -> None:
    reply = http.post(path, headers={**auth, "Content-Type": "text/plain"}, content=b"{}")
    assert reply.status_code == 415
    assert reply.json() == {"error": "request body must be sent as Content-Type: application/json"}


def test_a_json_content_type_with_a_charset_is_accepted(http: httpx.Client, auth: dict[str, str]) -> None:
    body = httpx.Request("POST", "/", json=TASK).content
    headers = {**auth, "Content-Type": "application/json; charset=utf-8"}
    assert http.post("/v1/tasks", headers=headers, content=body).status_code == 202


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"type": "sentiment", "type": "moderation"}', "type"),
        (b'{"label_spec": {"question": "a", "question": "b"}}', "question"),
    ],
)
def test_a_duplicate_key_is_400_naming_it(
    http: httpx.Client, auth: dict[str, str], body: bytes, key: str
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    reply = http.post("/v1/tasks", headers=headers, content=body)
    assert reply.status_code == 400
    assert reply.json() == {"error": f"{key} appears more than once in its JSON object"}


@pytest.mark.parametrize("options", [["é", "e\u0301"], ["a", "a "], ["yes", " yes"]])
def test_options_a_labeler_cannot_tell_apart_are_400(
    http: httpx.Client, auth: dict[str, str], options: list[str]
) -> None:
    body = {**TASK, "label_spec": {"question": "Which?", "options": options}}
    reply = http.post("/v1/tasks", headers=auth, json=body)
    assert reply.status_code == 400
    assert reply.json() == {"error": "label_spec.options must be distinct"}


def test_a_paused_core_is_503_with_retry_after(tmp_path: Path) -> None:
    """A core that does not answer in time (restarting, paused) was a 504 no client retried."""
    with make_stack(tmp_path, ASG_CORE_TIMEOUT="0.5") as stack:
        key = register(stack.base_url)["api_key"]
        core = stack.procs["core"]
        core.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            reply = httpx.get(
                f"{stack.base_url}/v1/customers/me", headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
            assert time.monotonic() - started < 5
        finally:
            core.send_signal(signal.SIGCONT)
    assert reply.status_code == 503
    assert reply.json() == {"error": "core unavailable"}
    assert reply.headers["Retry-After"] == "1"


def test_a_killed_core_is_503_with_retry_after_and_the_request_id_logged(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack:
        key = register(stack.base_url)["api_key"]
        stack.kill("core")
        reply = httpx.get(
            f"{stack.base_url}/v1/customers/me",
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req_trace_me"},
            timeout=10,
        )
        health = httpx.get(f"{stack.base_url}/v1/health", timeout=10)
    assert (reply.status_code, reply.headers["Retry-After"]) == (503, "1")
    assert reply.headers["X-Request-ID"] == "req_trace_me"
    assert (health.status_code, health.headers["Retry-After"]) == (503, "1")
    logged = [
        line
        for line in (tmp_path / "logs" / "gateway.log").read_text().splitlines()
        if "req_trace_me" in line
    ]
    assert len(logged) == 1 and "core call failed" in logged[0]
