"""Pure ASGI middleware: every request gets an id, echoed as `X-Request-ID`."""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEADER = b"x-request-id"


class RequestIdMiddleware:
    """Keeps a caller's own X-Request-ID (if sane), else makes one. The gateway logs it with
    every failed core call and every 500 (errors.py), so a caller quoting it finds the line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == _HEADER and 0 < len(value) <= 128 and value.isascii():
                request_id = value.decode()
                break
        request_id = request_id or "req_" + os.urandom(12).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_HEADER, raw)]
            await send(message)

        await self.app(scope, receive, send_with_id)
