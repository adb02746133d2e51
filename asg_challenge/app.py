"""The ASGI app: normalise the path once, then the reserved routes (dashboard, challenge) or the
proxy. Errors are mapped here, once, from the package's error classes to HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from asg_challenge import challenge, dashboard, marketplace
from asg_challenge.domain import is_reserved, normalise_path
from asg_challenge.errors import BadRequest, ChallengeGatewayError, TooManyRequests, Unauthorized
from asg_challenge.gateway import Gateway
from asg_challenge.proxy import Proxy, _json
from asg_challenge.serving import dated


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChallengeGatewayError)
    resp = JSONResponse({"error": str(exc)}, status_code=exc.status)
    if isinstance(exc, Unauthorized):
        resp.headers["WWW-Authenticate"] = 'Basic realm="asg-challenge dashboard", charset="UTF-8"'
    if isinstance(exc, TooManyRequests):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


class App:
    """Reserved prefixes first (never proxied, no rule can reach them), the proxy for the rest."""

    def __init__(self, gw: Gateway, explore: float = 0.02) -> None:
        self.gw = gw
        self.proxy = Proxy(gw, explore)
        market = gw.settings.market
        self.market = marketplace.Marketplace(gw, market) if market else None

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.proxy.start()
            if self.market:
                await self.market.start()
            try:
                yield
            finally:
                if self.market:
                    await self.market.stop()
                await self.proxy.stop()
                gw.store.close()

        self.reserved = Starlette(
            routes=[*dashboard.routes(), *marketplace.routes(), *challenge.routes()],
            exception_handlers={ChallengeGatewayError: _gateway_error, HTTPException: _http_error},
            lifespan=lifespan,
        )
        self.reserved.state.gateway = gw
        self.reserved.state.marketplace = self.market

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.reserved(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        send = dated(send)
        if scope["method"] == "CONNECT":
            await _json(send, 400, "CONNECT is not supported: this is not a forward proxy")
            return
        try:
            path = normalise_path(scope.get("raw_path") or scope["path"].encode())
        except BadRequest as exc:
            await _json(send, 400, str(exc))
            return
        scope = {**scope, "path": path, "raw_path": path.encode()}
        if is_reserved(path):
            scope["app"] = self.reserved
            await self.reserved(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)
