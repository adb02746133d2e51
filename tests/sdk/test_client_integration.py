"""The SDK against the real stack (core and gateway processes from ``tests/conftest.py``).

No workers run, so tasks stay ``pending``: results are the 202 body, and polling times out.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from asg_gateway import (
    ASGGatewayClient,
    AsyncASGGatewayClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PollTimeoutError,
    QuotaExhaustedError,
)
from asg_grpc.devstack import Stack
from tests.conftest import register, register_webhook

SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
PENDING = ("pending", "in_progress")


def task(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/{n}.jpg",
        "label_spec": SPEC,
        **extra,
    }


@pytest.fixture
def seed_env(stack: Stack, customer: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the seed snippets expect: ``API_KEY``, and the local gateway."""
    monkeypatch.setenv("API_KEY", customer["api_key"])
    monkeypatch.setenv("ASG_BASE_URL", stack.base_url)


@pytest.fixture
def client(stack: Stack, customer: dict[str, Any]) -> Iterator[ASGGatewayClient]:
    with ASGGatewayClient(customer["api_key"], stack.base_url) as client:
        yield client


def test_quickstart_snippet(seed_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    # seed 001, step 2, as written
    client = ASGGatewayClient(api_key=os.environ["API_KEY"])
    resp = client.submit_task(
        task_type="image_classification",
        data_url="https://example.com/image.jpg",
        label_spec={"question": "Animal?", "options": ["cat", "dog"]},
        consensus_threshold=3,
    )
    print(resp)
    # end of snippet
    client.close()
    assert resp["task_id"].startswith("tsk_")
    assert resp["status"] == "pending"
    assert resp["task_id"] in capsys.readouterr().out


def test_submitting_tasks_single_snippet(seed_env: None) -> None:
    # seed 004, single task, as written
    client = ASGGatewayClient(os.environ["API_KEY"])
    resp = client.submit_task(
        task_type="text_classification",
        data_url="https://cdn.example.com/doc.txt",
        label_spec={
            "question": "Document category?",
            "options": ["invoice", "receipt", "other"],
        },
        consensus_threshold=3,
        idempotency_key="order-10042-line-3",
    )
    print(resp)
    # end of snippet
    client.close()
    assert resp["status"] == "pending"


def test_submitting_tasks_batch_snippet(seed_env: None) -> None:
    register_webhook(os.environ["ASG_BASE_URL"], os.environ["API_KEY"], "https://example.com/hooks/asg")
    # seed 004, batch, as written
    client = ASGGatewayClient(os.environ["API_KEY"])
    resp = client.submit_batch(
        [
            {
                "type": "image_classification",
                "data_url": "https://cdn.example.com/a.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            },
        ],
        callback_url="https://example.com/hooks/asg",
    )
    print(resp)
    # end of snippet
    client.close()
    assert (resp["task_count"], resp["status"]) == (1, "accepted")


def test_register_submit_and_read_back(stack: Stack) -> None:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    with ASGGatewayClient(base_url=stack.base_url) as anonymous:
        registered = anonymous.register_customer("Demo", email)
    assert registered["api_key"].startswith("sk_sandbox_")
    assert (registered["tier"], registered["label_quota"]) == ("sandbox", 500)

    with ASGGatewayClient(registered["api_key"], stack.base_url) as client:
        me = client.me()
        assert (me["customer_id"], me["email"]) == (registered["customer_id"], email)

        submitted = client.submit_task("image_classification", "https://ex.com/i.jpg", SPEC)
        task_id = submitted["task_id"]
        assert submitted["status"] == "pending"

        stored = client.get_task(task_id)
        assert stored["task_id"] == task_id
        assert stored["task_type"] == "image_classification"
        assert stored["label_spec"] == SPEC
        assert stored["idempotency_key"].startswith("sdk-")

        result = client.get_result(task_id)
        assert result["status"] in PENDING
        assert result["message"]

        listed = client.list_tasks(limit=10)
        assert [t["task_id"] for t in listed["tasks"]] == [task_id]


def test_register_twice_raises_conflict(stack: Stack, customer: dict[str, Any]) -> None:
    with ASGGatewayClient(customer["api_key"], stack.base_url) as client:
        email = client.me()["email"]
        with pytest.raises(ConflictError) as caught:
            client.register_customer("Again", email.upper())
    assert caught.value.status == 409


def test_idempotent_replay_returns_the_same_task(client: ASGGatewayClient) -> None:
    first = client.submit_task("sentiment", "https://ex.com/t.txt", SPEC, idempotency_key="k-1")
    again = client.submit_task("sentiment", "https://ex.com/t.txt", SPEC, idempotency_key="k-1")
    assert again["task_id"] == first["task_id"]
    assert again["idempotent"] is True
    assert not first.get("idempotent")


def test_idempotency_key_with_another_body_raises_conflict(client: ASGGatewayClient) -> None:
    client.submit_task("sentiment", "https://ex.com/t.txt", SPEC, idempotency_key="k-2")
    with pytest.raises(ConflictError, match="idempotency_key"):
        client.submit_task("sentiment", "https://ex.com/other.txt", SPEC, idempotency_key="k-2")


def test_without_retries_no_key_is_generated(stack: Stack, customer: dict[str, Any]) -> None:
    with ASGGatewayClient(customer["api_key"], stack.base_url, max_retries=0) as client:
        task_id = client.submit_task("moderation", "https://ex.com/m.jpg", SPEC)["task_id"]
        assert client.get_task(task_id)["idempotency_key"] is None


def test_batch_returns_its_tasks(client: ASGGatewayClient) -> None:
    batch = client.submit_batch([task(1), task(2, idempotency_key="b-2")])
    assert (batch["task_count"], batch["status"]) == (2, "accepted")
    assert len(batch["task_ids"]) == 2
    for task_id in batch["task_ids"]:
        assert client.get_task(task_id)["batch_id"] == batch["batch_id"]
    listed = client.list_tasks(batch_id=batch["batch_id"])
    assert {t["task_id"] for t in listed["tasks"]} == set(batch["task_ids"])


def test_labor_opts_a_task_and_a_batch_in_to_challenge_gateways(client: ASGGatewayClient) -> None:
    one = client.submit_task("image_classification", "https://cdn.example.com/c.jpg", SPEC, labor="challenge")
    batch = client.submit_batch([task(1), task(2, labor="any")], labor="challenge")
    ids = [one["task_id"], *batch["task_ids"]]
    assert [client.get_task(t)["labor"] for t in ids] == ["challenge", "challenge", "any"]
    with pytest.raises(BadRequestError, match="labor must be one of any, challenge"):
        client.submit_task("image_classification", "https://cdn.example.com/d.jpg", SPEC, labor="robots")


def test_bad_key_raises_authentication_error(stack: Stack) -> None:
    with (
        ASGGatewayClient("sk_sandbox_not_a_key", stack.base_url) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.me()
    assert caught.value.status == 401
    assert str(caught.value).startswith("401 ")


def test_unknown_task_raises_not_found(client: ASGGatewayClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_task("tsk_doesnotexist")
    assert caught.value.status == 404
    assert caught.value.request_id is not None
    assert str(caught.value).endswith(f"(request_id={caught.value.request_id})")
    with pytest.raises(NotFoundError):
        client.get_result("tsk_doesnotexist")


def test_bad_body_raises_bad_request_naming_the_field(client: ASGGatewayClient) -> None:
    with pytest.raises(BadRequestError, match=r"label_spec\.options") as caught:
        client.submit_task(
            "image_classification", "https://ex.com/i.jpg", {"question": "Q?", "options": ["a"]}
        )
    assert caught.value.status == 400
    with pytest.raises(BadRequestError, match=r"tasks\[1\]\.data_url"):
        client.submit_batch([task(0), task(1, data_url="http://ex.com/insecure.jpg")])


def test_the_customer_default_consensus_method_is_set_and_cleared(client: ASGGatewayClient) -> None:
    assert client.set_consensus_method("adaptive")["consensus_method"] == "adaptive"
    assert client.me()["consensus_method"] == "adaptive"
    task_id = client.submit_task("sentiment", "https://ex.com/t.txt", SPEC)["task_id"]
    assert client.get_task(task_id)["consensus_method"] == "adaptive"
    with pytest.raises(BadRequestError, match=r"consensus_method must be one of"):
        client.set_consensus_method("vote")
    assert client.set_consensus_method(None)["consensus_method"] is None


def test_quota_exhausted_raises_quota_exhausted_with_its_figures(client: ASGGatewayClient) -> None:
    # 51 tasks reserving 10 labels each do not fit in the sandbox's 500.
    tasks = [task(n, consensus_threshold=10) for n in range(51)]
    with pytest.raises(QuotaExhaustedError, match="quota exhausted") as caught:
        client.submit_batch(tasks)
    assert isinstance(caught.value, PermissionDeniedError) and caught.value.status == 403
    assert (caught.value.limit, caught.value.used, caught.value.requested) == (500, 0, 510)
    assert caught.value.hint is not None and "asg customer tier cust_" in caught.value.hint
    # A single task over what is left says so too (the gateway's coalesced path).
    client.submit_batch([task(n, consensus_threshold=10) for n in range(50)])
    with pytest.raises(QuotaExhaustedError) as single:
        client.submit_task("image_classification", "https://ex.com/i.jpg", SPEC, consensus_threshold=10)
    assert (single.value.limit, single.value.used, single.value.requested) == (500, 500, 10)


def test_poll_result_times_out_with_the_last_status(client: ASGGatewayClient) -> None:
    task_id = client.submit_task("image_classification", "https://ex.com/i.jpg", SPEC)["task_id"]
    with pytest.raises(PollTimeoutError) as caught:
        client.poll_result(task_id, timeout=0.3, interval=0.1)
    assert caught.value.task_id == task_id
    assert caught.value.last_status in PENDING


@pytest.mark.asyncio
async def test_async_client_core_path(stack: Stack) -> None:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    async with AsyncASGGatewayClient(base_url=stack.base_url) as anonymous:
        registered = await anonymous.register_customer("Async", email)
    async with AsyncASGGatewayClient(registered["api_key"], stack.base_url) as client:
        assert (await client.me())["customer_id"] == registered["customer_id"]
        assert (await client.set_consensus_method("majority"))["consensus_method"] == "majority"
        submitted = await client.submit_task("sentiment", "https://ex.com/t.txt", SPEC)
        task_id = submitted["task_id"]
        assert (await client.get_task(task_id))["task_id"] == task_id
        assert (await client.get_result(task_id))["status"] in PENDING
        batch = await client.submit_batch([task(1)])
        assert batch["task_count"] == 1
        with pytest.raises(NotFoundError):
            await client.get_task("tsk_doesnotexist")
        with pytest.raises(PollTimeoutError):
            await client.poll_result(task_id, timeout=0.2, interval=0.1)


HOOK_URL = "https://example.com/hooks/sdk"
HOOK_SECRET = "whsec_sdk_secret_1"


def test_webhook_lifecycle(client: ASGGatewayClient) -> None:
    created = client.create_webhook(HOOK_URL, HOOK_SECRET, events=["task.verified", "task.failed"])
    webhook_id = created["webhook_id"]
    assert created["callback_url"] == HOOK_URL
    assert sorted(created["events"]) == ["task.failed", "task.verified"]
    assert created["active"] is True
    assert created["created_at"]
    assert HOOK_SECRET not in repr(created)

    listed = client.list_webhooks()
    assert [w["webhook_id"] for w in listed["webhooks"]] == [webhook_id]
    assert HOOK_SECRET not in repr(listed)
    assert all("secret" not in w for w in listed["webhooks"])

    assert client.list_deliveries(webhook_id) == {"deliveries": []}
    assert client.list_deliveries(webhook_id, limit=5) == {"deliveries": []}

    assert client.delete_webhook(webhook_id) is None
    assert client.list_webhooks() == {"webhooks": []}
    with pytest.raises(NotFoundError):
        client.delete_webhook(webhook_id)


def test_create_webhook_defaults_to_every_event(client: ASGGatewayClient) -> None:
    created = client.create_webhook(HOOK_URL, HOOK_SECRET)
    assert set(created["events"]) == {
        "task.verified",
        "task.settled",
        "task.failed",
        "task.cancelled",
        "task.expired",
        "job.completed",
        "job.failed",
    }


def test_another_customers_webhook_raises_not_found(stack: Stack, client: ASGGatewayClient) -> None:
    webhook_id = client.create_webhook(HOOK_URL, HOOK_SECRET)["webhook_id"]
    other = register(stack.base_url, "Other")
    with ASGGatewayClient(other["api_key"], stack.base_url) as stranger:
        with pytest.raises(NotFoundError, match="webhook not found") as caught:
            stranger.delete_webhook(webhook_id)
        assert caught.value.status == 404
        with pytest.raises(NotFoundError):
            stranger.list_deliveries(webhook_id)
        assert stranger.list_webhooks() == {"webhooks": []}
    assert [w["webhook_id"] for w in client.list_webhooks()["webhooks"]] == [webhook_id]


def test_unknown_webhook_raises_not_found(client: ASGGatewayClient) -> None:
    with pytest.raises(NotFoundError):
        client.delete_webhook("whk_doesnotexist")
    with pytest.raises(NotFoundError):
        client.list_deliveries("../customers/me")


def test_bad_webhook_secret_raises_bad_request_naming_it(client: ASGGatewayClient) -> None:
    with pytest.raises(BadRequestError, match="secret") as caught:
        client.create_webhook(HOOK_URL, "short")
    assert caught.value.status == 400
    with pytest.raises(BadRequestError, match="callback_url"):
        client.create_webhook("http://example.com/insecure", HOOK_SECRET)
    assert client.list_webhooks() == {"webhooks": []}


def test_duplicate_webhook_url_raises_conflict(client: ASGGatewayClient) -> None:
    client.create_webhook(HOOK_URL, HOOK_SECRET)
    with pytest.raises(ConflictError, match="callback_url is already registered") as caught:
        client.create_webhook(HOOK_URL, "another_secret")
    assert caught.value.status == 409
    assert len(client.list_webhooks()["webhooks"]) == 1


def test_task_callback_url_must_be_a_registered_webhook(client: ASGGatewayClient) -> None:
    client.create_webhook(HOOK_URL, HOOK_SECRET)
    accepted = client.submit_task("image_classification", "https://ex.com/i.jpg", SPEC, callback_url=HOOK_URL)
    assert accepted["status"] == "pending"
    assert client.get_task(accepted["task_id"])["callback_url"] == HOOK_URL
    with pytest.raises(BadRequestError, match="callback_url is not a registered webhook") as caught:
        client.submit_task(
            "image_classification",
            "https://ex.com/i.jpg",
            SPEC,
            callback_url="https://example.com/hooks/unregistered",
        )
    assert caught.value.message.startswith("callback_url is not a registered webhook; register it first:")
    assert "POST /v1/webhooks" in caught.value.message


@pytest.mark.asyncio
async def test_async_client_webhook_path(stack: Stack, customer: dict[str, Any]) -> None:
    async with AsyncASGGatewayClient(customer["api_key"], stack.base_url) as client:
        created = await client.create_webhook(HOOK_URL, HOOK_SECRET, events=["job.completed"])
        webhook_id = created["webhook_id"]
        assert created["events"] == ["job.completed"]
        listed = await client.list_webhooks()
        assert [w["webhook_id"] for w in listed["webhooks"]] == [webhook_id]
        assert HOOK_SECRET not in repr(listed)
        assert await client.list_deliveries(webhook_id, limit=10) == {"deliveries": []}
        with pytest.raises(ConflictError):
            await client.create_webhook(HOOK_URL, HOOK_SECRET)
        with pytest.raises(BadRequestError, match="secret"):
            await client.create_webhook("https://example.com/hooks/other", "short")
        submitted = await client.submit_task("sentiment", "https://ex.com/t.txt", SPEC, callback_url=HOOK_URL)
        assert submitted["status"] == "pending"
        with pytest.raises(BadRequestError, match="callback_url is not a registered webhook"):
            await client.submit_task(
                "sentiment", "https://ex.com/t.txt", SPEC, callback_url="https://ex.com/nope"
            )
        assert await client.delete_webhook(webhook_id) is None
        assert await client.list_webhooks() == {"webhooks": []}
        with pytest.raises(NotFoundError):
            await client.delete_webhook(webhook_id)


def test_the_key_can_come_from_asg_api_key_as_in_the_quickstart(
    stack: Stack, customer: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASG_API_KEY", customer["api_key"])
    with ASGGatewayClient(base_url=stack.base_url) as client:
        assert client.me()["customer_id"] == customer["customer_id"]
