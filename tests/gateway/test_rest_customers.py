"""Customers over REST: registration, the profile, how keys are kept; health (seeds 001, 002).

Everything runs against the real stack of `conftest.py`. The seed examples register fixed
emails (`demo@example.com`, `ops@acme.example`), which the session stack may already hold from
another test, so they run on a stack of their own.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

KEY_MESSAGE = "Store this API key securely — it cannot be retrieved again."
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CUSTOMER_ID = re.compile(r"^cust_[0-9a-f]{28}$")
SANDBOX_KEY = re.compile(r"^sk_sandbox_[A-Za-z0-9_-]{20,}$")


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    """One client for the module (overrides conftest's): a new client per test costs an SSL
    context, ~20 ms."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def seed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack where the seeds' fixed emails are certainly not registered yet."""
    with make_stack(tmp_path_factory.mktemp("seed-stack")) as s:
        yield s


def assert_registered(reply: httpx.Response) -> dict:
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"customer_id", "api_key", "tier", "label_quota", "message"}
    assert CUSTOMER_ID.match(body["customer_id"]), body
    assert SANDBOX_KEY.match(body["api_key"]), body
    assert body["tier"] == "sandbox"
    assert body["label_quota"] == 500
    assert body["message"] == KEY_MESSAGE
    return body


# seeds 001 and 002, as written ------------------------------------------------------------


def test_quickstart_step1_register_then_409_for_the_same_email(seed_stack: Stack) -> None:
    url = f"{seed_stack.base_url}/v1/customers"
    body = b'{"name":"Demo","email":"demo@example.com"}'
    headers = {"Content-Type": "application/json"}

    first = assert_registered(httpx.post(url, content=body, headers=headers))
    again = httpx.post(url, content=body, headers=headers)

    assert again.status_code == 409
    assert again.json() == {"error": "email already registered"}
    # The first customer is untouched by the refused second registration.
    me = httpx.get(f"{seed_stack.base_url}/v1/customers/me", headers=bearer(first["api_key"]))
    assert me.status_code == 200
    assert me.json()["customer_id"] == first["customer_id"]


def test_reference_register_and_profile(seed_stack: Stack) -> None:
    registered = assert_registered(
        httpx.post(
            f"{seed_stack.base_url}/v1/customers",
            content=b'{"name":"Acme","email":"ops@acme.example"}',
            headers={"Content-Type": "application/json"},
        )
    )

    me = httpx.get(f"{seed_stack.base_url}/v1/customers/me", headers=bearer(registered["api_key"]))

    assert me.status_code == 200
    body = me.json()
    assert body["customer_id"] == registered["customer_id"]
    assert (body["name"], body["email"], body["tier"]) == ("Acme", "ops@acme.example", "sandbox")
    assert (body["label_quota"], body["labels_reserved"], body["quota_remaining"]) == (500, 0, 500)
    assert TIMESTAMP.match(body["created_at"])


def test_reference_health(http: httpx.Client) -> None:
    reply = http.get("/v1/health")

    assert reply.status_code == 200
    assert reply.json() == {"ok": True, "service": "asg-gateway"}


# registration ---------------------------------------------------------------------------


def test_register_returns_a_sandbox_key_with_500_labels(http: httpx.Client) -> None:
    assert_registered(http.post("/v1/customers", json={"name": "Demo", "email": unique_email()}))


def test_register_gives_every_customer_its_own_id_and_key(stack: Stack) -> None:
    a, b = register(stack.base_url), register(stack.base_url)

    assert a["customer_id"] != b["customer_id"]
    assert a["api_key"] != b["api_key"]


def test_register_same_email_in_other_case_is_409(http: httpx.Client) -> None:
    email = unique_email()
    assert_registered(http.post("/v1/customers", json={"name": "One", "email": email}))

    for variant in (email.upper(), email.capitalize()):
        again = http.post("/v1/customers", json={"name": "Two", "email": variant})
        assert again.status_code == 409, variant
        assert again.json() == {"error": "email already registered"}


def test_register_stores_the_email_lower_case(http: httpx.Client) -> None:
    email = unique_email()
    key = assert_registered(http.post("/v1/customers", json={"name": "Case", "email": email.upper()}))[
        "api_key"
    ]

    assert http.get("/v1/customers/me", headers=bearer(key)).json()["email"] == email


def test_concurrent_registrations_of_one_email_make_one_customer(http: httpx.Client) -> None:
    email = unique_email()

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(
            pool.map(
                lambda n: http.post("/v1/customers", json={"name": f"N{n}", "email": email}),
                range(8),
            )
        )

    assert sorted(r.status_code for r in replies) == [201] + [409] * 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"email": "x@example.com"}, "name", id="name-missing"),
        pytest.param({"name": "", "email": "x@example.com"}, "name", id="name-empty"),
        pytest.param({"name": "   ", "email": "x@example.com"}, "name", id="name-blank"),
        pytest.param({"name": 7, "email": "x@example.com"}, "name", id="name-not-string"),
        pytest.param({"name": "n" * 201, "email": "x@example.com"}, "name", id="name-too-long"),
        pytest.param({"name": "Demo"}, "email", id="email-missing"),
        pytest.param({"name": "Demo", "email": ""}, "email", id="email-empty"),
        pytest.param({"name": "Demo", "email": "demo"}, "email", id="email-no-at"),
        pytest.param({"name": "Demo", "email": "demo@example"}, "email", id="email-no-tld"),
        pytest.param({"name": "Demo", "email": "@example.com"}, "email", id="email-no-local"),
        pytest.param({"name": "Demo", "email": "de mo@example.com"}, "email", id="email-space"),
        pytest.param({"name": "Demo", "email": "a@@example.com"}, "email", id="email-two-ats"),
        pytest.param({"name": "Demo", "email": "a" * 250 + "@example.com"}, "email", id="email-too-long"),
        pytest.param({"name": "Demo", "email": ["a@b.co"]}, "email", id="email-not-string"),
        pytest.param({"name": "Demo", "email": "x@example.com", "tier": "live"}, "tier", id="unknown-field"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(http: httpx.Client, body: dict, field: str) -> None:
    reply = http.post("/v1/customers", json=body)

    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error.startswith(f"{field} "), error


def test_register_rejected_email_is_still_free(http: httpx.Client) -> None:
    email = unique_email()
    refused = http.post("/v1/customers", json={"name": "", "email": email})
    assert refused.status_code == 400

    assert_registered(http.post("/v1/customers", json={"name": "Later", "email": email}))


@pytest.mark.parametrize(
    ("content", "status"),
    [
        pytest.param(b'{"name": "Demo", "email": ', 400, id="malformed-json"),
        pytest.param(b'["Demo", "demo@example.com"]', 400, id="json-array"),
        pytest.param(b"", 400, id="empty-body"),
        pytest.param(
            b'{"name": "' + b"n" * (64 * 1024) + b'", "email": "x@example.com"}',
            413,
            id="over-64KiB",
        ),
    ],
)
def test_register_rejects_unreadable_bodies(http: httpx.Client, content: bytes, status: int) -> None:
    reply = http.post("/v1/customers", content=content, headers={"Content-Type": "application/json"})

    assert reply.status_code == status, reply.text
    assert set(reply.json()) == {"error"}


# profile and keys -----------------------------------------------------------------------


def test_profile_shows_a_key_hint_and_never_the_key(http: httpx.Client) -> None:
    email = unique_email()
    registered = assert_registered(http.post("/v1/customers", json={"name": "Hint", "email": email}))
    key = registered["api_key"]

    reply = http.get("/v1/customers/me", headers=bearer(key))

    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {
        "customer_id", "name", "email", "tier", "label_quota", "labels_reserved",
        "quota_remaining", "key_hint", "created_at", "prices", "rate_limit", "consensus_method",
    }  # fmt: skip
    assert body["key_hint"] == f"{key[:7]}…{key[-4:]}"
    assert key not in reply.text
    assert "api_key" not in body
    assert (body["name"], body["email"]) == ("Hint", email)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        pytest.param({}, "missing api key", id="no-header"),
        pytest.param(bearer("sk_sandbox_not-a-key"), "invalid api key", id="unknown-key"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid api key", id="basic"),
    ],
)
def test_profile_needs_a_valid_key(http: httpx.Client, headers: dict, error: str) -> None:
    reply = http.get("/v1/customers/me", headers=headers)

    assert reply.status_code == 401
    assert reply.json() == {"error": error}


def test_store_keeps_only_the_hash_of_the_api_key(stack: Stack) -> None:
    registered = register(stack.base_url)
    key = registered["api_key"]
    db = stack.data_dir / "asg.sqlite3"

    # The WAL first: a checkpoint may move its pages into the main file, never the other way.
    raw = b"".join(p.read_bytes() for p in (Path(f"{db}-wal"), Path(f"{db}-shm"), db) if p.exists())

    assert key.encode() not in raw
    assert key.removeprefix("sk_sandbox_").encode() not in raw
    assert hashlib.sha256(key.encode()).hexdigest().encode() in raw
    assert registered["customer_id"].encode() in raw
