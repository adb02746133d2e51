"""X-Request-ID end to end: echoed on every response, forwarded to the core, on both logs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

TASK = {
    "type": "image_classification",
    "data_url": "https://cdn.example.com/rid/1.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
}


@pytest.fixture(scope="module")
def rid_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("rid")) as s:
        yield s


def log_lines(stack: Stack, name: str) -> list[dict]:
    assert stack.log_dir is not None
    lines = []
    for raw in (stack.log_dir / f"{name}.log").read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def wait_for_line(stack: Stack, name: str, rid: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [line for line in log_lines(stack, name) if line.get("request_id") == rid]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {name} log line with request_id {rid}")


def test_given_id_is_echoed_on_202_400_404_and_401(rid_stack: Stack) -> None:
    key = register(rid_stack.base_url)["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=rid_stack.base_url, timeout=10) as http:
        ok = http.post("/v1/tasks", json=TASK, headers={**auth, "X-Request-ID": "rid-202"})
        assert ok.status_code == 202, ok.text
        assert ok.headers["x-request-id"] == "rid-202"
        bad = http.post("/v1/tasks", json={**TASK, "type": 5}, headers={**auth, "X-Request-ID": "rid-400"})
        assert bad.status_code == 400
        assert bad.headers["x-request-id"] == "rid-400"
        missing = http.get("/v1/tasks/tsk_doesnotexist", headers={**auth, "X-Request-ID": "rid-404"})
        assert missing.status_code == 404, missing.text
        assert missing.headers["x-request-id"] == "rid-404"
        unauth = http.get("/v1/tasks", headers={"X-Request-ID": "rid-401"})
        assert unauth.status_code == 401
        assert unauth.headers["x-request-id"] == "rid-401"
    # The core refused the lookup while serving rid-404: its log line carries the same id.
    line = wait_for_line(rid_stack, "core", "rid-404")
    assert line["msg"] == "request refused"


def test_absent_or_invalid_id_is_replaced_by_a_new_one(rid_stack: Stack) -> None:
    with httpx.Client(base_url=rid_stack.base_url, timeout=10) as http:
        plain = http.get("/v1/tasks")
        generated = plain.headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        assert http.get("/v1/tasks").headers["x-request-id"] != generated
        for invalid in ("x" * 129, "has space", "tab\tinside"):
            reply = http.get("/v1/tasks", headers={"X-Request-ID": invalid})
            echoed = reply.headers["x-request-id"]
            assert echoed != invalid and len(echoed) == 32
