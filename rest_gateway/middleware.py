"""The gateway's one middleware, pure ASGI: what every HTTP request gets before and after its
route, in one layer (one call and one `send` wrapper per request instead of three, issue 17):

* a request id, echoed as `X-Request-ID`: the caller's own (printable ASCII, at most 128) or a
  new one; every log line of the request carries it, in the gateway and in the core (sent as
  gRPC metadata), so a caller quoting it finds the lines;
* the path's trailing slashes dropped before routing (slashes.py, docs/api.md "Paths");
* the request counted and timed under the template of the route it matched (metrics.py): the
  answers of every layer inside this one, the router's 404 and the error handlers' included."""

from __future__ import annotations

import os
import time

from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asg_common import logs
from rest_gateway import metrics, slashes

_HEADER = logs.REQUEST_ID_HEADER.encode()


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER:
            text = value.decode("latin-1")
            if logs.valid_request_id(text):
                return text
    return os.urandom(16).hex()  # 32 hex digits, as uuid4().hex was, without building a UUID


class Edge:
    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)  # every log line of this request, and the core's metadata
        header = (_HEADER, request_id.encode())
        scope = slashes.canonical(scope, self.router)
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.observe(scope, code, time.perf_counter() - start)
