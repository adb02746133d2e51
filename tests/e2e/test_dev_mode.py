"""Development mode over the real stack (issue 16, item 2): under `asg dev` a developer's plain
http:// receiver on this machine gets signed deliveries and a local http:// manifest is read; a
stack without it (production rules, private addresses allowed or not) refuses the same URLs
with a 400 naming the field."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asg_gateway import verify_webhook_signature
from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register, register_webhook
from tests.core.webhooks.receiver import Receiver
from tests.e2e.test_labeling import asg_dev, assert_stopped_cleanly, task_body, wait_for
from tests.manifest_servers import HttpsManifestServer

SECRET = "whsec_dev_mode_secret"
REFUSED = "must be an https URL (http:// to a loopback host only in development mode, ASG_DEV_MODE=on)"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A developer's plain-HTTP webhook receiver on 127.0.0.1."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def manifests() -> Iterator[HttpsManifestServer]:
    """A developer's plain-HTTP manifest server on 127.0.0.1 (no certificate, no SSL_CERT_FILE)."""
    with HttpsManifestServer(None) as server:
        server.files["m.jsonl"] = b"".join(
            json.dumps({"data_url": f"https://cdn.example.com/{n}.jpg"}).encode() + b"\n" for n in range(3)
        )
        yield server


def test_asg_dev_delivers_to_a_local_http_receiver_and_reads_a_local_http_manifest(
    tmp_path: Path, receiver: Receiver, manifests: HttpsManifestServer
) -> None:
    assert receiver.url.startswith("http://127.0.0.1:")
    with asg_dev(tmp_path, workers=3) as dev:
        assert "dev mode   on: webhook, callback and manifest URLs may be http:// to loopback" in dev.output()
        key = register(dev.base_url)["api_key"]
        webhook = register_webhook(dev.base_url, key, receiver.url, SECRET)
        assert webhook["callback_url"] == receiver.url
        with httpx.Client(
            base_url=dev.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            body = {**task_body(0, ["cat", "dog"], 2), "callback_url": receiver.url}
            submitted = http.post("/v1/tasks", json=body)
            assert submitted.status_code == 202, submitted.text
            task_id = submitted.json()["task_id"]

            [delivery] = receiver.wait_for(1, 60)
            event = verify_webhook_signature(delivery.body, delivery.headers.get("ASG-Signature"), SECRET)
            assert event["data"]["task_id"] == task_id

            job = http.post(
                "/v1/jobs",
                json={
                    "manifest_url": manifests.url("m.jsonl"),
                    "label_spec": {"question": "Q", "options": ["a", "b"]},
                },
            )
            assert job.status_code == 202, job.text
            job_id = job.json()["job_id"]

            def ingested() -> dict | None:
                state = http.get(f"/v1/jobs/{job_id}").json()
                return state if state["counts"]["tasks_created"] == 3 else None

            wait_for(f"{job_id} ingested", ingested, 30)
        assert_stopped_cleanly(dev, signal.SIGINT)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Development mode off, private addresses off: what a deployment runs."""
    with make_stack(
        tmp_path_factory.mktemp("prod"), ASG_DEV_MODE="off", ASG_ALLOW_PRIVATE_URLS="off"
    ) as stack:
        yield stack


@pytest.fixture(params=["production", "private-urls-allowed"])
def off(request: pytest.FixtureRequest, production: Stack, stack: Stack) -> Stack:
    """Both stacks without development mode; the test suite's own allows private addresses."""
    return production if request.param == "production" else stack


def test_without_dev_mode_the_same_urls_are_refused_naming_the_field(
    off: Stack, receiver: Receiver, manifests: HttpsManifestServer
) -> None:
    key = register(off.base_url)["api_key"]
    with httpx.Client(base_url=off.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
        webhook = http.post("/v1/webhooks", json={"callback_url": receiver.url, "secret": SECRET})
        assert (webhook.status_code, webhook.json()) == (400, {"error": f"callback_url {REFUSED}"})

        single = http.post(
            "/v1/tasks", json={**task_body(0, ["cat", "dog"], 2), "callback_url": receiver.url}
        )
        assert (single.status_code, single.json()) == (400, {"error": f"callback_url {REFUSED}"})

        batch = http.post(
            "/v1/tasks/batch", json={"tasks": [task_body(0, ["cat", "dog"], 2)], "callback_url": receiver.url}
        )
        assert (batch.status_code, batch.json()) == (400, {"error": f"callback_url {REFUSED}"})

        job = http.post(
            "/v1/jobs",
            json={
                "manifest_url": manifests.url("m.jsonl"),
                "label_spec": {"question": "Q", "options": ["a", "b"]},
            },
        )
        assert job.status_code == 400
        assert job.json()["error"].startswith(
            "manifest_url must be an s3://bucket/key or https:// URL (http://"
        )
    assert receiver.requests == [] and manifests.ranges == []


def test_dev_mode_keeps_http_to_loopback_only(tmp_path: Path) -> None:
    with make_stack(tmp_path, ASG_DEV_MODE="on") as stack:
        key = register(stack.base_url)["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        for url in ("http://10.0.0.1/hook", f"http://{uuid.uuid4().hex}.example.com/hook"):
            reply = httpx.post(
                f"{stack.base_url}/v1/webhooks", json={"callback_url": url, "secret": SECRET}, headers=headers
            )
            assert reply.status_code == 400
            assert reply.json()["error"] == (
                "callback_url must be an https URL, or an http:// URL to a loopback host (development mode)"
            )
