"""docs/api.md's Limits table, row by row: a request just over each limit gets the stated error.

The table is parsed, not copied: a row added without a probe here, or a probe whose row went
away, fails the test, so the table and the gateway cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register, register_webhook
from tests.gateway.bodies import TASK

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADER = "| what | limit | error |"

HOOK = "https://hooks.example.com/"


def limits_table() -> dict[str, tuple[int, str]]:
    """`what` → (status, error message) of each row."""
    lines = API_MD.read_text().splitlines()
    start = lines.index(HEADER) + 2  # past the header and the |---| line
    rows: dict[str, tuple[int, str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        what, _limit, error = (cell.strip() for cell in line.strip("|").split(" | "))
        match = re.fullmatch(r"(\d{3}) `([^`]+)`.*", error)
        assert match, f"the error of {what!r} must read: STATUS `message`"
        rows[what] = (int(match[1]), match[2])
    return rows


def task(**changes: object) -> dict[str, object]:
    return {**TASK, **changes}


def spec(options: list[str], question: str = "Which?") -> dict[str, object]:
    return task(label_spec={"question": question, "options": options})


Probe = Callable[[httpx.Client], httpx.Response]


def post(path: str, body: object) -> Probe:
    return lambda client: client.post(path, json=body)


def get(path: str) -> Probe:
    return lambda client: client.get(path)


def twenty_first_webhook(client: httpx.Client) -> httpx.Response:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    for i in range(20):
        register_webhook(str(client.base_url), key, f"{HOOK}{i}")
    return client.post("/v1/webhooks", json={"callback_url": f"{HOOK}20", "secret": "whsec_test_secret"})


def over_the_rate_limit(client: httpx.Client) -> httpx.Response:
    for _ in range(100):
        reply = client.get("/v1/customers/me")
        if reply.status_code != 200:
            return reply
    return reply


PROBES: dict[str, Probe] = {
    "body of `POST /v1/tasks`, `POST /v1/customers`, `POST /v1/webhooks`, `POST /v1/jobs`": post(
        "/v1/tasks", task(data_url="https://example.com/" + "a" * 65536)
    ),
    "body of `POST /v1/tasks/batch`": post("/v1/tasks/batch", {"tasks": [TASK] * 70_000}),
    "tasks per batch": post("/v1/tasks/batch", {"tasks": [TASK] * 1001}),
    "`data_url`": post("/v1/tasks", task(data_url="https://example.com/" + "a" * 2029)),
    "`label_spec.question`": post("/v1/tasks", spec(["a", "b"], question="q" * 1001)),
    "`label_spec.options` count": post("/v1/tasks", spec([f"o{i}" for i in range(51)])),
    "`label_spec.options` each": post("/v1/tasks", spec(["a", "b" * 201])),
    "`label_spec.options` distinct": post("/v1/tasks", spec(["café", "cafe\u0301"])),
    "`idempotency_key`": post("/v1/tasks", task(idempotency_key="k" * 256)),
    "`expires_in_seconds`": post("/v1/tasks", task(expires_in_seconds=2592001)),
    "`name` (customer)": post("/v1/customers", {"name": "n" * 201, "email": "n@example.com"}),
    "`email`": post("/v1/customers", {"name": "n", "email": "e" * 250 + "@example.com"}),
    "webhook `secret`": post("/v1/webhooks", {"callback_url": HOOK, "secret": "s" * 257}),
    "webhooks per customer": twenty_first_webhook,
    "`limit` of `GET /v1/tasks`, `GET /v1/jobs`, `GET /v1/webhooks/{id}/deliveries`": get(
        "/v1/tasks?limit=201"
    ),
    "`count` of `GET /v1/chain/headers`": get("/v1/chain/headers?count=2001"),
    "`from` of `GET /v1/chain/headers`": get("/v1/chain/headers?from=-1"),
    "`month` of `GET /v1/billing/usage`": get("/v1/billing/usage?month=9999-01"),
    "calls per API key": over_the_rate_limit,
}


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The rate limit on, as in production: the other rows are checked far below it."""
    with make_stack(tmp_path_factory.mktemp("limits"), ASG_RATE_LIMIT="on") as stack:
        yield stack


def test_every_row_has_a_probe() -> None:
    assert set(limits_table()) == set(PROBES)


@pytest.mark.parametrize(("what", "stated"), sorted(limits_table().items()))
def test_each_limit_gets_its_stated_error(
    limited_stack: Stack, stack: Stack, what: str, stated: tuple[int, str]
) -> None:
    target = limited_stack if what == "calls per API key" else stack
    key = register(target.base_url)["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=target.base_url, headers=headers, timeout=30) as client:
        reply = PROBES[what](client)
    status, message = stated
    assert reply.status_code == status, reply.text
    assert re.fullmatch(re.escape(message).replace("N", r"\d+"), reply.json()["error"]), reply.text
