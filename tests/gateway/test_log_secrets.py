"""Issue 15: no log line of gateway or core holds a key, a secret or a URL's query string."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx

from asg_common.logs import JsonFormatter
from tests.conftest import free_addr, make_stack, register, register_webhook

SECRET = "SECRET1"


def test_a_stack_run_logs_no_secret(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack:
        stack.start_workers(3, "--delay", "0.05")
        key = register(stack.base_url)["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        hook = f"https://{free_addr()}/hook?tok={SECRET}"  # nothing listens: the delivery fails
        register_webhook(stack.base_url, key, hook, secret=f"whsec_{SECRET}_x")
        task = {
            "type": "image_classification",
            "data_url": f"https://h.example.com/x.jpg?sig={SECRET}",
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            "callback_url": hook,
        }
        with httpx.Client(base_url=stack.base_url, timeout=10) as http:
            reply = http.post("/v1/tasks", json=task, headers=auth)
            assert reply.status_code == 202, reply.text
            bad_key = "sk_sandbox_" + SECRET + "abcdefghijklmnop"
            refused = http.get("/v1/tasks", headers={"Authorization": f"Bearer {bad_key}"})
            assert refused.status_code == 401
        assert stack.log_dir is not None
        core_log = stack.log_dir / "core.log"
        deadline = time.monotonic() + 30
        while "webhook delivery not delivered" not in core_log.read_text():
            assert time.monotonic() < deadline, "the failing webhook was never attempted"
            time.sleep(0.2)
        logs = {p.name: p.read_text() for p in stack.log_dir.glob("*.log")}
    for name, text in logs.items():
        assert SECRET not in text, name
        assert key not in text, name


def test_exception_text_and_tracebacks_are_redacted() -> None:
    try:
        raise RuntimeError(f"GET https://h/x.jpg?sig={SECRET} failed with Bearer sk_live_{SECRET}zzzzzz")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "failed: %s", (exc,), (type(exc), exc, None)
        )
    record.password = SECRET
    line = JsonFormatter().format(record)
    assert SECRET not in line
    assert "https://h/x.jpg?<redacted>" in line


def test_nested_fields_keep_their_shape_and_are_redacted() -> None:
    """The core's settings banner is a nested object: it stays one, secrets inside blanked,
    and a value Settings already masked shows as its mask."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "core settings", (), None)
    record.settings = {
        "operator_token": "***",
        "ledger": {"password": SECRET, "urls": [f"https://h/m?sig={SECRET}"]},
        "port": 50051,
    }
    shown = json.loads(JsonFormatter().format(record))["settings"]
    assert shown == {
        "operator_token": "***",
        "ledger": {"password": "<redacted>", "urls": ["https://h/m?<redacted>"]},
        "port": 50051,
    }
