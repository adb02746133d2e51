"""The clients against a scripted peer: a real HTTP server on 127.0.0.1 answering in order.

It stands in for a gateway that fails in ways the real one cannot be made to on demand
(503 then 202, a 429 with Retry-After), and records what the SDK sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from asg_gateway import (
    APIConnectionError,
    ASGError,
    ASGGatewayClient,
    AsyncASGGatewayClient,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    __version__,
)

ACCEPTED = {"task_id": "tsk_1", "status": "pending", "created_at": "2026-04-09T12:00:00Z"}
UNAVAILABLE = {"error": "core unavailable"}
SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
TASK = {"type": "image_classification", "data_url": "https://ex.com/a.jpg", "label_spec": SPEC}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Peer:
    base_url: str
    replies: list[tuple[int, dict[str, Any] | str, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def reply(self, status: int, body: dict[str, Any] | str, **headers: str) -> None:
        self.replies.append((status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    def bodies(self) -> list[Any]:
        return [request.body for request in self.received]


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            peer.received.append(
                Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
            )
            status, body, headers = (
                peer.replies.pop(0) if peer.replies else (500, {"error": "unscripted"}, {})
            )
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            data = b"" if status == 204 else data
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
            if status != 204:
                self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    peer = Peer(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(peer)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield peer
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def client(peer: Peer) -> Iterator[ASGGatewayClient]:
    with ASGGatewayClient("sk_test", peer.base_url) as client:
        yield client


def test_submit_task_retries_a_503_with_the_same_generated_key(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    peer.reply(202, ACCEPTED)
    assert client.submit_task("image_classification", "https://ex.com/a.jpg", SPEC) == ACCEPTED
    first, second = peer.bodies()
    assert first == second
    assert first["idempotency_key"].startswith("sdk-")


def test_submit_task_retries_with_the_callers_key(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(502, "<html>bad gateway</html>")
    peer.reply(200, {**ACCEPTED, "idempotent": True})
    resp = client.submit_task("image_classification", "https://ex.com/a.jpg", SPEC, idempotency_key="order-1")
    assert resp["idempotent"] is True
    assert [body["idempotency_key"] for body in peer.bodies()] == ["order-1", "order-1"]


def test_submit_task_sends_only_the_fields_given(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(202, ACCEPTED)
    client.submit_task(
        "sentiment",
        "https://ex.com/t.txt",
        SPEC,
        consensus_threshold=5,
        callback_url="https://ex.com/hook",
        idempotency_key="k1",
    )
    [request] = peer.received
    assert (request.method, request.path) == ("POST", "/v1/tasks")
    assert request.body == {
        "type": "sentiment",
        "data_url": "https://ex.com/t.txt",
        "label_spec": SPEC,
        "consensus_threshold": 5,
        "callback_url": "https://ex.com/hook",
        "idempotency_key": "k1",
    }


def test_submit_task_without_retries_is_not_keyed_nor_repeated(peer: Peer) -> None:
    peer.reply(503, UNAVAILABLE)
    with (
        ASGGatewayClient("sk_test", peer.base_url, max_retries=0) as client,
        pytest.raises(ServerError),
    ):
        client.submit_task("image_classification", "https://ex.com/a.jpg", SPEC)
    [body] = peer.bodies()
    assert "idempotency_key" not in body


def test_batch_with_an_unkeyed_task_is_not_retried(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    with pytest.raises(ServerError):
        client.submit_batch([{**TASK, "idempotency_key": "a"}, TASK])
    assert len(peer.received) == 1


def test_batch_with_every_task_keyed_is_retried(peer: Peer, client: ASGGatewayClient) -> None:
    batch = {"batch_id": "bat_1", "task_count": 1, "status": "accepted", "task_ids": ["tsk_1"]}
    peer.reply(504, UNAVAILABLE)
    peer.reply(202, batch)
    tasks = [{**TASK, "idempotency_key": "a"}]
    assert client.submit_batch(tasks, callback_url="https://ex.com/hook") == batch
    first, second = peer.bodies()
    assert first == second == {"tasks": tasks, "callback_url": "https://ex.com/hook"}


def test_register_customer_is_not_retried_and_sends_no_key(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    with pytest.raises(ServerError):
        client.register_customer("Demo", "demo@example.com")
    [request] = peer.received
    assert request.body == {"name": "Demo", "email": "demo@example.com"}
    assert "authorization" not in request.headers


def test_get_task_raises_when_retries_run_out(peer: Peer) -> None:
    peer.reply(503, UNAVAILABLE)
    peer.reply(503, UNAVAILABLE)
    with (
        ASGGatewayClient("sk_test", peer.base_url, max_retries=1) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.get_task("tsk_1")
    assert caught.value.status == 503
    assert len(peer.received) == 2


def test_rate_limit_waits_for_retry_after(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(429, {"error": "rate limited"}, Retry_After="1")
    peer.reply(200, {"customer_id": "cust_1"})
    started = time.monotonic()
    assert client.me() == {"customer_id": "cust_1"}
    assert time.monotonic() - started >= 1.0


def test_rate_limit_beyond_a_minute_is_raised_at_once(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(429, {"error": "rate limited"}, Retry_After="120")
    with pytest.raises(RateLimitError) as caught:
        client.me()
    assert caught.value.retry_after == 120.0
    assert len(peer.received) == 1


def test_bad_request_is_not_retried(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(400, {"error": "label_spec.options must contain at least 2 entries"})
    with pytest.raises(BadRequestError, match=r"^400 label_spec\.options"):
        client.submit_task("image_classification", "https://ex.com/a.jpg", {"options": ["a"]})
    assert len(peer.received) == 1


def test_error_carries_the_request_id_header(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(404, {"error": "task not found"}, X_Request_ID="req_42")
    with pytest.raises(NotFoundError) as caught:
        client.get_result("tsk_nope")
    assert str(caught.value) == "404 task not found (request_id=req_42)"
    assert caught.value.request_id == "req_42"


def test_requests_carry_the_bearer_key_and_user_agent(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(200, {"customer_id": "cust_1"})
    client.me()
    [request] = peer.received
    assert (request.method, request.path) == ("GET", "/v1/customers/me")
    assert request.headers["authorization"] == "Bearer sk_test"
    assert request.headers["user-agent"] == f"asg-gateway-python/{__version__}"


def test_list_tasks_sends_only_the_filters_given(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(200, {"tasks": [], "next_cursor": None})
    assert client.list_tasks(status="pending", limit=10) == {"tasks": [], "next_cursor": None}
    assert peer.received[0].path == "/v1/tasks?status=pending&limit=10"


def test_task_id_stays_one_path_segment(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(404, {"error": "task not found"})
    with pytest.raises(NotFoundError):
        client.get_task("../customers/me")
    assert peer.received[0].path == "/v1/tasks/..%2Fcustomers%2Fme"


def test_poll_result_returns_the_ready_result(peer: Peer, client: ASGGatewayClient) -> None:
    ready = {"task_id": "tsk_1", "status": "settled", "consensus_label": "cat"}
    peer.reply(202, {"status": "in_progress", "message": "Task is still being labeled."})
    peer.reply(200, ready)
    assert client.poll_result("tsk_1", timeout=5, interval=0.01) == ready
    assert [r.path for r in peer.received] == ["/v1/tasks/tsk_1/result"] * 2


def test_a_success_that_is_not_json_raises_asg_error(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(200, "<html>captive portal</html>")
    with pytest.raises(ASGError, match="not JSON"):
        client.me()


def test_missing_api_key_raises_before_any_request(peer: Peer) -> None:
    with ASGGatewayClient(base_url=peer.base_url) as client:
        with pytest.raises(ASGError, match="needs an API key"):
            client.submit_task("image_classification", "https://ex.com/a.jpg", SPEC)
        with pytest.raises(ASGError, match="needs an API key"):
            client.poll_result("tsk_1")
    assert peer.received == []


def test_connection_refused_raises_api_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{closed_port}"
    with (
        ASGGatewayClient("sk_test", base_url, max_retries=1) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.me()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_base_url_comes_from_the_environment(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASG_BASE_URL", peer.base_url)
    peer.reply(200, {"customer_id": "cust_1"})
    with ASGGatewayClient("sk_test") as client:
        assert client.me() == {"customer_id": "cust_1"}


def test_base_url_defaults_to_the_local_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASG_BASE_URL", raising=False)
    with ASGGatewayClient("sk_test") as client:
        assert client.base_url == "http://localhost:8081"


@pytest.mark.asyncio
async def test_async_submit_task_retries_with_the_same_key(peer: Peer) -> None:
    peer.reply(503, UNAVAILABLE)
    peer.reply(202, ACCEPTED)
    async with AsyncASGGatewayClient("sk_test", peer.base_url) as client:
        resp = await client.submit_task("image_classification", "https://ex.com/a.jpg", SPEC)
    assert resp == ACCEPTED
    first, second = peer.bodies()
    assert first == second
    assert first["idempotency_key"].startswith("sdk-")


@pytest.mark.asyncio
async def test_async_poll_result_returns_the_ready_result(peer: Peer) -> None:
    ready = {"task_id": "tsk_1", "status": "verified", "consensus_label": "dog"}
    peer.reply(202, {"status": "pending", "message": "Task is still being labeled."})
    peer.reply(200, ready)
    async with AsyncASGGatewayClient("sk_test", peer.base_url) as client:
        assert await client.poll_result("tsk_1", timeout=5, interval=0.01) == ready


@pytest.mark.asyncio
async def test_async_missing_api_key_raises_before_any_request(peer: Peer) -> None:
    async with AsyncASGGatewayClient(base_url=peer.base_url) as client:
        with pytest.raises(ASGError, match="needs an API key"):
            await client.me()
    assert peer.received == []


WEBHOOK = {
    "webhook_id": "whk_1",
    "callback_url": "https://ex.com/hook",
    "events": ["task.verified"],
    "active": True,
    "created_at": "2026-04-09T12:00:00Z",
}


def test_create_webhook_sends_the_fields_given(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(201, WEBHOOK)
    peer.reply(201, WEBHOOK)
    assert client.create_webhook("https://ex.com/hook", "s3cret-value", events=("task.verified",)) == WEBHOOK
    client.create_webhook("https://ex.com/hook", "s3cret-value")
    first, second = peer.received
    assert (first.method, first.path) == ("POST", "/v1/webhooks")
    assert first.body == {
        "callback_url": "https://ex.com/hook",
        "secret": "s3cret-value",
        "events": ["task.verified"],
    }
    assert second.body == {"callback_url": "https://ex.com/hook", "secret": "s3cret-value"}


def test_create_webhook_refuses_events_as_one_string(peer: Peer, client: ASGGatewayClient) -> None:
    with pytest.raises(TypeError, match="events"):
        client.create_webhook("https://ex.com/hook", "s3cret-value", events="task.verified")
    assert peer.received == []


def test_create_webhook_is_not_retried(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    with pytest.raises(ServerError):
        client.create_webhook("https://ex.com/hook", "s3cret-value")
    assert len(peer.received) == 1


def test_create_webhook_connection_error_is_not_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with (
        ASGGatewayClient("sk_test", f"http://127.0.0.1:{closed_port}", max_retries=2) as client,
        pytest.raises(APIConnectionError),
    ):
        client.create_webhook("https://ex.com/hook", "s3cret-value")


def test_delete_webhook_returns_none_on_204(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(204, "")
    assert client.delete_webhook("whk_1") is None
    [request] = peer.received
    assert (request.method, request.path) == ("DELETE", "/v1/webhooks/whk_1")
    assert request.headers["authorization"] == "Bearer sk_test"


def test_delete_webhook_is_not_retried(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    with pytest.raises(ServerError):
        client.delete_webhook("whk_1")
    assert len(peer.received) == 1


def test_list_webhooks_is_retried_as_a_read(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(503, UNAVAILABLE)
    peer.reply(200, {"webhooks": [WEBHOOK]})
    assert client.list_webhooks() == {"webhooks": [WEBHOOK]}
    assert [(r.method, r.path) for r in peer.received] == [("GET", "/v1/webhooks")] * 2


def test_list_deliveries_is_retried_and_sends_the_limit(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(502, "<html>bad gateway</html>")
    peer.reply(200, {"deliveries": []})
    assert client.list_deliveries("whk_1", limit=5) == {"deliveries": []}
    assert [r.path for r in peer.received] == ["/v1/webhooks/whk_1/deliveries?limit=5"] * 2


def test_webhook_id_stays_one_path_segment(peer: Peer, client: ASGGatewayClient) -> None:
    peer.reply(404, {"error": "webhook not found"})
    peer.reply(404, {"error": "webhook not found"})
    with pytest.raises(NotFoundError):
        client.delete_webhook("../tasks")
    with pytest.raises(NotFoundError):
        client.list_deliveries("a/b")
    assert [r.path for r in peer.received] == ["/v1/webhooks/..%2Ftasks", "/v1/webhooks/a%2Fb/deliveries"]


@pytest.mark.asyncio
async def test_async_webhook_calls(peer: Peer) -> None:
    peer.reply(503, UNAVAILABLE)
    peer.reply(503, UNAVAILABLE)
    peer.reply(200, {"webhooks": []})
    peer.reply(204, "")
    async with AsyncASGGatewayClient("sk_test", peer.base_url) as client:
        with pytest.raises(ServerError):
            await client.create_webhook("https://ex.com/hook", "s3cret-value")
        assert await client.list_webhooks() == {"webhooks": []}
        assert await client.delete_webhook("whk_1") is None
    assert [(r.method, r.path) for r in peer.received] == [
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("DELETE", "/v1/webhooks/whk_1"),
    ]
