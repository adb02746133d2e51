"""Pure ASGI middleware: every request gets an id, echoed as `X-Request-ID`."""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asg_common import logs

_HEADER = logs.REQUEST_ID_HEADER.encode()


class RequestIdMiddleware:
    """Keeps a caller's own X-Request-ID (printable ASCII, at most 128), else makes one. Every
    log line of the request carries it, in the gateway and in the core (sent as gRPC metadata),
    so a caller quoting it finds the lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == _HEADER and logs.valid_request_id(value.decode("latin-1")):
                request_id = value.decode()
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)  # every log line of this request, and the core's metadata
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (_HEADER, raw)]
            await send(message)

        await self.app(scope, receive, send_with_id)
