"""The gateway's Prometheus metrics (docs/operations.md): requests by route template, method and
status code, and their latency; served at GET /metrics (no auth, no rate limit, not in OpenAPI)."""

from __future__ import annotations

import functools

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

REQUESTS = Counter(
    "asg_http_requests", "HTTP requests answered, by route template", ["route", "method", "code"]
)
SECONDS = Histogram(
    "asg_http_request_seconds", "HTTP request latency, by route template", ["route", "method"]
)
UNMATCHED = "<unmatched>"  # a path no route has: one series, whatever the raw paths


@functools.cache
def _series(route: str, method: str, code: int) -> tuple[Counter, Histogram]:
    """The two series of a (route template, method, code), looked up once rather than at every
    request (`labels()` validates and takes a lock); one entry per series the registry holds."""
    return REQUESTS.labels(route, method, str(code)), SECONDS.labels(route, method)


def observe(scope: Scope, code: int, seconds: float) -> None:
    """One answered request, under the template of the route the router matched (set on the
    scope it was given) or UNMATCHED; called by the gateway's middleware (middleware.py)."""
    route = str(getattr(scope.get("route"), "path", UNMATCHED))
    count, latency = _series(route, scope["method"], code)
    count.inc()
    latency.observe(seconds)


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
