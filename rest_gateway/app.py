"""Assembles the gateway: routers, error handlers, middleware, the core channel's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from rest_gateway import console, errors, metrics, openapi
from rest_gateway.core import CoreClient
from rest_gateway.middleware import Edge
from rest_gateway.routes import billing, chain, customers, dashboard, health, jobs, tasks, webhooks
from rest_gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    """The app over `settings`, which the caller read (asg-gateway: once, at start)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.core = CoreClient(settings.core_addr, settings.core_timeout)
        try:
            yield
        finally:
            await app.state.core.close()

    # Swagger UI from the fastapi-offline package, not a CDN: /v1/docs works offline.
    app = FastAPIOffline(
        title="ASG Refinery API",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
        static_url="/v1/docs/static",
        swagger_ui_oauth2_redirect_url="/v1/docs/oauth2-redirect",
        # FastAPI's own OpenTelemetry hooks off: the gateway's metrics are Prometheus (metrics.py)
        # and no OpenTelemetry SDK is installed, yet the check cost ~4 µs of every request
        # (docs/benchmarks.md, issue 17).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    for module in (customers, tasks, webhooks, jobs, billing, chain, dashboard, health):
        app.include_router(module.router)
    documented = list(app.router.routes)  # the order the OpenAPI (and /v1/docs) shows
    # Matched first: POST /v1/tasks is the hot path, and every route tried before it costs. No
    # two routers share a path prefix, so which route a request reaches is the same in any order.
    app.router.routes.insert(0, tasks.SUBMIT)
    app.mount("/console", console.files(), name="console")
    metrics.install(app)
    app.add_middleware(Edge, router=app.router)  # request id, trailing slash, metrics: one layer
    app.openapi = lambda: openapi.openapi(app, documented)  # type: ignore[method-assign]
    return app
