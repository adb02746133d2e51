"""Odd but possible requests get a 4xx with a JSON error naming the problem, never a 500."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from asg_grpc.devstack import Stack

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
