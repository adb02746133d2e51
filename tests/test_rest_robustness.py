"""Odd but possible requests get a 4xx with a JSON error naming the problem, never a 500."""

from __future__ import annotations

import httpx
import pytest


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
