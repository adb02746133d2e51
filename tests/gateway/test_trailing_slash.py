"""Every /v1 route answers the same with or without a trailing slash, never with a 307
(issue 16; docs/api.md, "Paths"), over real HTTP against the running gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from rest_gateway.app import create_app
from rest_gateway.settings import GatewaySettings
from tests.gateway.bodies import TASK

SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def routes() -> Iterator[tuple[str, str]]:
    """(method, path with its parameters filled in) of every /v1 route: the published schema's,
    and the schema and docs pages themselves."""
    app = create_app(GatewaySettings())
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), re.sub(r"\{[^}]+\}", "nope_1", path)
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/v1") and route.include_in_schema is False:
            for method in (route.methods or {"GET"}) - SKIPPED_METHODS:
                yield method, route.path


ROUTES = sorted(set(routes()))


def test_the_routes_are_found() -> None:
    assert ("GET", "/v1/tasks") in ROUTES and ("POST", "/v1/tasks") in ROUTES
    assert len(ROUTES) >= 15


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_a_trailing_slash_answers_as_the_route_does(
    http: httpx.Client, auth: dict[str, str], method: str, path: str
) -> None:
    def call(url: str) -> httpx.Response:
        body: Any = {} if method in ("POST", "PUT", "PATCH") else None
        return http.request(method, url, headers=auth, json=body, follow_redirects=False)

    plain, slashed = call(path), call(path + "/")
    assert slashed.status_code != 307, slashed.headers.get("location")
    assert (slashed.status_code, slashed.headers.get("content-type")) == (
        plain.status_code,
        plain.headers.get("content-type"),
    ), slashed.text


def test_a_task_submitted_and_listed_with_slashes(http: httpx.Client, auth: dict[str, str]) -> None:
    submitted = http.post("/v1/tasks/", json=TASK, headers=auth, follow_redirects=False)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    listed = http.get("/v1/tasks/", headers=auth, follow_redirects=False)
    assert listed.status_code == 200
    assert task_id in listed.text
    assert http.get(f"/v1/tasks/{task_id}//", headers=auth).json()["task_id"] == task_id


def test_an_unknown_path_with_a_slash_is_an_ordinary_404(http: httpx.Client) -> None:
    reply = http.get("/v1/no-such-thing/", follow_redirects=False)
    assert reply.status_code == 404
