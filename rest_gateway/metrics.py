"""The gateway's Prometheus metrics (docs/operations.md): requests by route template, method and
status code, and their latency; served at GET /metrics (no auth, no rate limit, not in OpenAPI)."""

from __future__ import annotations

import functools
import time

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class MetricsMiddleware:
    """Counts every HTTP request under the template of the route it matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _route(scope: Scope) -> str:
        matched = scope.get("route")  # set by the router on the scope it was given
        return str(getattr(matched, "path", UNMATCHED))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = self._route(scope), scope["method"]
            count, seconds = _series(route, method, code)
            count.inc()
            seconds.observe(time.perf_counter() - start)


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)
