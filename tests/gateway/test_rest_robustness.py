"""Odd but possible requests get a 4xx with a JSON error naming the problem, never a 500."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import register

TASK = {
    "type": "image_classification",
    "data_url": "https://example.com/i.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=%C2%B2", "cursor"),  # "²" is a digit to str.isdigit, not to int()
        ("cursor=99999999999999999999", "cursor"),
        ("limit=3000000000", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
    ],
)
def test_list_query_values_out_of_range_are_400_naming_them(
    http: httpx.Client, auth: dict[str, str], query: str, field: str
) -> None:
    reply = http.get(f"/v1/tasks?{query}", headers=auth)
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    assert field in reply.json()["error"]


def test_a_non_ascii_authorization_header_is_401(http: httpx.Client) -> None:
    reply = http.get("/v1/customers/me", headers={"Authorization": "Bearer é".encode()})
    assert reply.status_code == 401
    assert reply.json() == {"error": "invalid api key"}


def test_a_store_locked_by_another_process_is_503_and_stores_nothing(
    stack: Stack, http: httpx.Client, auth: dict[str, str]
) -> None:
    blocker = sqlite3.connect(stack.data_dir / "asg.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # an operator's long write, say
    try:
        reply = http.post("/v1/tasks", headers=auth, json=TASK)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert reply.status_code == 503
    assert reply.json() == {"error": "core unavailable"}
    assert http.get("/v1/tasks", headers=auth).json()["tasks"] == []
    assert http.post("/v1/tasks", headers=auth, json=TASK).status_code == 202


@pytest.mark.asyncio
async def test_concurrent_submissions_each_get_their_own_answer(stack: Stack) -> None:
    """POST /v1/tasks sent together travel to the core in one call; the answers must not mix."""
    keys = [register(stack.base_url)["api_key"] for _ in range(3)]
    bad_body = {**TASK, "data_url": "ftp://example.com/i.jpg"}
    requests = [
        (f"Bearer {keys[i % 3]}", {**TASK, "data_url": f"https://example.com/{i}.jpg"}) for i in range(60)
    ]
    requests += [("Bearer sk_sandbox_nope", TASK), (f"Bearer {keys[0]}", bad_body), ("", TASK)]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        replies = await asyncio.gather(
            *(
                client.post("/v1/tasks", json=body, headers={"Authorization": auth} if auth else {})
                for auth, body in requests
            )
        )
    assert [r.status_code for r in replies] == [202] * 60 + [401, 400, 401]
    assert replies[-3].json() == {"error": "invalid api key"}
    assert replies[-2].json()["error"].startswith("data_url ")
    assert replies[-1].json() == {"error": "missing api key"}
    for i, key in enumerate(keys):
        mine = httpx.get(
            f"{stack.base_url}/v1/tasks?limit=200", headers={"Authorization": f"Bearer {key}"}
        ).json()
        expected = {replies[n].json()["task_id"] for n in range(i, 60, 3)}
        assert {t["task_id"] for t in mine["tasks"]} == expected
