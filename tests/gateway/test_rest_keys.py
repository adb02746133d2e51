"""Key rotation over REST (docs/api.md, "Rotating a key"): a new key at once, the old one
valid for its grace period and refused after it, hints only in every answer, bad input a 400
naming `grace_seconds`, at most five keys working at once."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from asg_gateway import ASGGatewayClient, AuthenticationError
from asg_grpc.devstack import Stack
from tests.conftest import register


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rotate(http: httpx.Client, key: str, **body: object) -> httpx.Response:
    return http.post("/v1/customers/me/keys", headers=bearer(key), json=body or None)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_rotated_key_works_alongside_the_old_one_for_a_day(http: httpx.Client, customer: dict) -> None:
    old = customer["api_key"]
    before = time.time()

    reply = rotate(http, old)

    assert reply.status_code == 201, reply.text
    body = reply.json()
    new = body["api_key"]
    assert new.startswith("sk_sandbox_") and new != old
    assert body["key_hint"] == f"{new[:7]}…{new[-4:]}"
    assert body["expires_at"] is None
    assert body["previous_key"]["key_hint"] == f"{old[:7]}…{old[-4:]}"
    assert before + 86_400 - 5 <= epoch(body["previous_key"]["expires_at"]) <= time.time() + 86_400 + 5
    assert old not in reply.text
    for key in (old, new):
        assert http.get("/v1/customers/me", headers=bearer(key)).status_code == 200
    assert http.get("/v1/customers/me", headers=bearer(old)).json()["key_hint"] == body["key_hint"]
    keys = http.get("/v1/customers/me/keys", headers=bearer(new)).json()["keys"]
    assert [k["key_hint"] for k in keys] == [body["key_hint"], body["previous_key"]["key_hint"]]
    assert old not in str(keys) and new not in str(keys)


def test_the_old_key_is_refused_once_its_grace_period_is_over(http: httpx.Client, customer: dict) -> None:
    old = customer["api_key"]
    new = rotate(http, old, grace_seconds=1).json()["api_key"]

    assert http.get("/v1/customers/me", headers=bearer(old)).status_code == 200
    time.sleep(1.3)
    refused = http.get("/v1/customers/me", headers=bearer(old))
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid api key"}
    assert http.get("/v1/customers/me", headers=bearer(new)).status_code == 200
    assert len(http.get("/v1/customers/me/keys", headers=bearer(new)).json()["keys"]) == 1


def test_grace_zero_retires_a_leaked_key_at_once(http: httpx.Client, customer: dict) -> None:
    old = customer["api_key"]
    new = rotate(http, old, grace_seconds=0).json()["api_key"]

    assert http.get("/v1/customers/me", headers=bearer(old)).status_code == 401
    assert rotate(http, old).status_code == 401  # a retired key cannot mint another
    assert http.get("/v1/customers/me", headers=bearer(new)).status_code == 200


def test_bad_grace_periods_name_the_field_and_change_nothing(http: httpx.Client, customer: dict) -> None:
    key = customer["api_key"]
    for body, status in (
        ({"grace_seconds": -1}, 400),
        ({"grace_seconds": 604_801}, 400),
        ({"grace_seconds": "60"}, 400),
        ({"grace_seconds": True}, 400),
    ):
        reply = rotate(http, key, **body)
        assert reply.status_code == status, (body, reply.text)
        assert "grace_seconds" in reply.json()["error"]
    unknown = rotate(http, key, grace=5)
    assert unknown.status_code == 400 and "grace" in unknown.json()["error"]

    keys = http.get("/v1/customers/me/keys", headers=bearer(key)).json()["keys"]
    assert len(keys) == 1 and keys[0]["expires_at"] is None


def test_at_most_five_keys_work_at_once(http: httpx.Client, customer: dict) -> None:
    key = customer["api_key"]
    for _ in range(4):
        assert rotate(http, key).status_code == 201
    before = http.get("/v1/customers/me/keys", headers=bearer(key)).json()["keys"]

    refused = rotate(http, key)

    assert refused.status_code == 409
    assert "at most 5 keys" in refused.json()["error"]
    assert http.get("/v1/customers/me/keys", headers=bearer(key)).json()["keys"] == before


def test_rotation_needs_a_key(http: httpx.Client) -> None:
    assert http.post("/v1/customers/me/keys").status_code == 401
    assert http.get("/v1/customers/me/keys").status_code == 401


def test_the_sdk_rotates_and_lists_keys(stack: Stack) -> None:
    old = register(stack.base_url)["api_key"]
    with ASGGatewayClient(api_key=old, base_url=stack.base_url) as client:
        rotated = client.rotate_key(grace_seconds=0)
    with ASGGatewayClient(api_key=rotated["api_key"], base_url=stack.base_url) as client:
        assert [k["key_hint"] for k in client.list_keys()["keys"]] == [rotated["key_hint"]]
    with ASGGatewayClient(api_key=old, base_url=stack.base_url) as client, pytest.raises(AuthenticationError):
        client.me()
