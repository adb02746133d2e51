"""Webhook registration over REST (seed 002 "Webhooks"), and tasks' callback_url."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import register, register_webhook

TASK = {
    "type": "image_classification",
    "data_url": "https://example.com/i.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
}


def test_register_list_and_delete_as_in_the_reference(http: httpx.Client, auth: dict[str, str]) -> None:
    created = http.post(
        "/v1/webhooks", headers=auth, json={"callback_url": "https://example.com/hook", "secret": "whsec_xxx"}
    )
    assert created.status_code == 201
    hook = created.json()
    assert set(hook) == {"webhook_id", "callback_url", "events", "active", "created_at"}
    assert hook["webhook_id"].startswith("whk_") and hook["active"] is True
    assert hook["events"] == [
        "task.verified",
        "task.settled",
        "task.failed",
        "task.cancelled",
        "task.expired",
        "job.completed",
        "job.failed",
    ]

    listed = http.get("/v1/webhooks", headers=auth).json()["webhooks"]
    assert listed == [hook]
    assert "whsec_xxx" not in http.get("/v1/webhooks", headers=auth).text

    assert http.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries", headers=auth).json() == {
        "deliveries": []
    }
    deleted = http.delete(f"/v1/webhooks/{hook['webhook_id']}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    assert http.get("/v1/webhooks", headers=auth).json() == {"webhooks": []}


def test_another_customers_webhook_is_404(stack: Stack, http: httpx.Client, auth: dict[str, str]) -> None:
    other = register(stack.base_url)["api_key"]
    hook = register_webhook(stack.base_url, other, "https://example.com/theirs")
    for reply in (
        http.delete(f"/v1/webhooks/{hook['webhook_id']}", headers=auth),
        http.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries", headers=auth),
    ):
        assert (reply.status_code, reply.json()) == (404, {"error": "webhook not found"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret": "whsec_xxx"}, "callback_url"),
        ({"callback_url": "http://example.com/hook", "secret": "whsec_xxx"}, "callback_url"),
        ({"callback_url": "https://example.com/hook"}, "secret"),
        ({"callback_url": "https://example.com/hook", "secret": "short"}, "secret"),
        (
            {"callback_url": "https://example.com/hook", "secret": "whsec_xxx", "events": ["task.done"]},
            "events[0]",
        ),
        (
            {"callback_url": "https://example.com/hook", "secret": "whsec_xxx", "events": "task.verified"},
            "events",
        ),
        ({"callback_url": "https://example.com/hook", "secret": "whsec_xxx", "colour": "red"}, "colour"),
    ],
)
def test_bad_registrations_are_400_naming_the_field(
    http: httpx.Client, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    reply = http.post("/v1/webhooks", headers=auth, json=body)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(f"{field} ")
    assert http.get("/v1/webhooks", headers=auth).json() == {"webhooks": []}


# URLs a lenient parser reads as one host and the delivery client as another, or cannot deliver
# to at all (issue 15, defect 6): refused when registered, whatever the URL guard allows.
AMBIGUOUS_URLS = [
    "https://127.0.0.1\\@1.1.1.1/h",
    "https://example.com\\@1.1.1.1/h",
    "https://example.com\\evil.com/h",
    "https://user@example.com/h",
    "https://user:pass@example.com/h",
    "https://example.com%0a/h",
    "https://exa mple.com/h",
    "https://example.com\t/h",
    "https://example.com/h\\x",
    "https://example.com/h\x00",
    "https://example.com/\u00a0",
]


@pytest.mark.parametrize("url", AMBIGUOUS_URLS)
def test_an_ambiguous_callback_url_is_400_naming_it(
    http: httpx.Client, auth: dict[str, str], url: str
) -> None:
    reply = http.post("/v1/webhooks", headers=auth, json={"callback_url": url, "secret": "whsec_xxx"})
    assert (reply.status_code, reply.json()) == (400, {"error": "callback_url must be an https URL"})
    assert http.get("/v1/webhooks", headers=auth).json() == {"webhooks": []}


def test_the_same_url_twice_is_409(http: httpx.Client, auth: dict[str, str]) -> None:
    body = {"callback_url": "https://example.com/hook", "secret": "whsec_xxx"}
    assert http.post("/v1/webhooks", headers=auth, json=body).status_code == 201
    reply = http.post("/v1/webhooks", headers=auth, json=body)
    assert (reply.status_code, reply.json()) == (409, {"error": "callback_url is already registered"})


def test_a_task_callback_url_must_be_a_registered_webhook(http: httpx.Client, auth: dict[str, str]) -> None:
    # The seed's batch example: a top-level callback_url not registered. The 400 says how to fix it.
    url = "https://example.com/hooks/asg"
    single = http.post("/v1/tasks", headers=auth, json={**TASK, "callback_url": url})
    batch = http.post("/v1/tasks/batch", headers=auth, json={"tasks": [TASK], "callback_url": url})
    for reply in (single, batch):
        assert (reply.status_code, reply.json()) == (
            400,
            {
                "error": "callback_url is not a registered webhook; register it first: POST /v1/webhooks"
                ' {"callback_url": "<this URL>", "secret": "<8 to 256 characters>"} (docs/webhooks.md)'
            },
        )
    assert http.get("/v1/tasks", headers=auth).json()["tasks"] == []

    hook = http.post("/v1/webhooks", headers=auth, json={"callback_url": url, "secret": "whsec_xxx"}).json()
    assert http.post("/v1/tasks", headers=auth, json={**TASK, "callback_url": url}).status_code == 202
    http.delete(f"/v1/webhooks/{hook['webhook_id']}", headers=auth)
    reply = http.post("/v1/tasks", headers=auth, json={**TASK, "callback_url": url})
    assert reply.status_code == 400  # a deleted webhook no longer counts
