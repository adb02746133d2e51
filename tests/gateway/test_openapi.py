"""/v1/openapi.json tells the truth: every status a route answers is listed for it, with the
`{"error": ...}` body; nothing it never sends (FastAPI's 422) is; /v1/docs needs no CDN."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest

from rest_gateway import models
from tests.conftest import register
from tests.gateway.bodies import TASK


@pytest.fixture(scope="module")
def schema(stack: Any) -> dict[str, Any]:
    reply = httpx.get(f"{stack.base_url}/v1/openapi.json", timeout=10)
    assert reply.status_code == 200
    return reply.json()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def probes(path: str, operation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Requests a client could send: good, bad and out-of-range, with and without a key."""
    url = re.sub(r"\{[^}]+\}", "nope_1", path)
    for name, spec in ((p["name"], p["schema"]) for p in operation.get("parameters", [])):
        for bound in spec.get("anyOf", [spec]):
            if "maximum" in bound:
                yield {"url": url, "params": {name: bound["maximum"] + 1}}
            if "minimum" in bound:
                yield {"url": url, "params": {name: bound["minimum"] - 1}}
        yield {"url": url, "params": {name: "x"}}
    yield {"url": url}
    yield {"url": url, "json": {}}
    yield {"url": url, "json": {"unknown": 1}}
    yield {"url": url, "content": b"{", "headers": {"Content-Type": "application/json"}}
    yield {"url": url, "content": b"{}", "headers": {"Content-Type": "text/plain"}}
    yield {"url": url, "json": {"x": "a" * 9 * 1024 * 1024}}


def check_body(operation: dict[str, Any], reply: httpx.Response) -> None:
    """A JSON body validates against the model its schema names (extra fields refused)."""
    listed = operation["responses"].get(str(reply.status_code), {})
    ref = listed.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    if ref is not None:
        getattr(models, ref.rsplit("/", 1)[1]).model_validate(reply.json())


def test_every_status_a_route_answers_is_in_its_schema(stack: Any, schema: dict[str, Any]) -> None:
    key = register(stack.base_url)["api_key"]
    unlisted = []
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for path, method, operation in operations(schema):
            listed = set(operation["responses"])
            for probe in probes(path, operation):
                for authorization in (
                    {},
                    {"Authorization": "Bearer sk_sandbox_nope"},
                    {"Authorization": f"Bearer {key}"},
                ):
                    headers = {**probe.get("headers", {}), **authorization}
                    reply = client.request(method, **{**probe, "headers": headers})
                    check_body(operation, reply)
                    if str(reply.status_code) not in listed:
                        unlisted.append(
                            f"{method.upper()} {reply.url} → {reply.status_code} {reply.text[:200]}"
                        )
    assert unlisted == []


def test_no_route_lists_a_422_and_every_error_has_its_error_body(schema: dict[str, Any]) -> None:
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            assert status != "422", f"{method} {path}"
            if status.startswith(("4", "5")) and path != "/v1/health":  # its 503 is a Health
                body = response["content"]["application/json"]
                # A 403 (quota exhausted) has the quota's figures beside `error` (docs/api.md).
                model, fields = (
                    ("QuotaErrorBody", {"error", "limit", "used", "requested", "hint"})
                    if status == "403"
                    else ("ErrorBody", {"error"})
                )
                assert body["schema"] == {"$ref": f"#/components/schemas/{model}"}, f"{method} {path}"
                assert set(body["example"]) == fields
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_routes_that_take_a_key_say_so_and_the_others_do_not(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`sk_…` from POST /v1/customers",
    }
    open_routes = {(p, m) for p, m, o in operations(schema) if o["security"] == []}
    assert open_routes == {("/v1/customers", "post"), ("/v1/health", "get")}


def test_docs_load_from_the_gateway_alone(stack: Any) -> None:
    """Swagger UI's script and style come from the gateway, not a CDN: /v1/docs works offline."""
    page = httpx.get(f"{stack.base_url}/v1/docs", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets and all(a.startswith("/v1/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{stack.base_url}{asset}", timeout=10).status_code == 200, asset
    assert "https://" not in re.sub(r"https://swagger.io[^'\"]*", "", page.text)


def test_each_documented_body_example_is_accepted_and_its_shape_enforced(
    stack: Any, schema: dict[str, Any]
) -> None:
    """The request schemas describe what the gateway reads: its example is taken, and a field
    the schema does not have is refused, by the model and by the gateway alike."""
    key = register(stack.base_url)["api_key"]
    with httpx.Client(
        base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for path, method, operation in operations(schema):
            if "requestBody" not in operation:
                continue
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            model = getattr(models, ref.rsplit("/", 1)[1])
            (example,) = schema["components"]["schemas"][model.__name__]["examples"]
            if path == "/v1/customers":
                example = {**example, "email": f"{uuid.uuid4().hex[:12]}@example.com"}
            if path == "/v1/webhooks":
                example = {**example, "callback_url": f"https://hooks.example.com/{uuid.uuid4().hex}"}
            model.model_validate(example)
            accepted = client.request(method, path, json=example)
            assert accepted.status_code in (200, 201, 202), f"{path} {accepted.text}"
            with pytest.raises(pydantic.ValidationError):
                model.model_validate({**example, "colour": "red"})
            refused = client.request(method, path, json={**example, "colour": "red"})
            assert refused.json() == {"error": "colour is not a known field"}, path


def test_real_answers_match_their_response_schemas(stack: Any, schema: dict[str, Any]) -> None:
    """Bodies with content (a task, a webhook, a page of them) checked against their schemas."""
    key = register(stack.base_url)["api_key"]
    hook = f"https://hooks.example.com/{uuid.uuid4().hex}"
    task = {**TASK, "callback_url": hook, "idempotency_key": uuid.uuid4().hex}
    with httpx.Client(
        base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        webhook = client.post("/v1/webhooks", json={"callback_url": hook, "secret": "whsec_test_secret"})
        submitted = client.post("/v1/tasks", json=task)
        task_id = submitted.json()["task_id"]
        replies = [
            ("/v1/webhooks", "post", webhook),
            ("/v1/tasks", "post", submitted),
            ("/v1/tasks", "post", client.post("/v1/tasks", json=task)),  # the idempotent 200
            (
                "/v1/tasks/batch",
                "post",
                client.post("/v1/tasks/batch", json={"tasks": [task | {"idempotency_key": None}]}),
            ),
            ("/v1/tasks", "get", client.get("/v1/tasks")),
            ("/v1/tasks/{task_id}", "get", client.get(f"/v1/tasks/{task_id}")),
            ("/v1/webhooks", "get", client.get("/v1/webhooks")),
            ("/v1/customers/me", "get", client.get("/v1/customers/me")),
            ("/v1/billing/usage", "get", client.get("/v1/billing/usage")),
            ("/v1/billing/invoices", "get", client.get("/v1/billing/invoices")),
            ("/v1/chain/headers", "get", client.get("/v1/chain/headers")),
            ("/v1/tasks/{task_id}", "delete", client.delete(f"/v1/tasks/{task_id}")),
            ("/v1/tasks/{task_id}/result", "get", client.get(f"/v1/tasks/{task_id}/result")),
            ("/v1/health", "get", client.get("/v1/health")),
        ]
    for path, method, reply in replies:
        assert reply.is_success, f"{method} {path} {reply.text}"
        assert str(reply.status_code) in schema["paths"][path][method]["responses"]
        check_body(schema["paths"][path][method], reply)
