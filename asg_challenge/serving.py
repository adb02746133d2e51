"""uvicorn's httptools protocol with one change: the writes of one event-loop step leave as one
`send`. uvicorn writes a response's status line and headers, then its body, as two socket
writes; for the small replies most proxied requests get that is two syscalls and two wake-ups of
the client where one does (docs/benchmarks.md, "Challenge gateway").

And one Date header per response: uvicorn's own is off (`date_header=False`, main.py) and
`dated` adds the gateway's only to a response that has none, so a proxied reply carries the
upstream's Date alone (before, uvicorn prepended its own and the client got two)."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any

from starlette.types import Message, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_date: list[Any] = [-1, b""]  # (the second it is for, the header value), made once a second


def _now_date() -> tuple[bytes, bytes]:
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, formatdate(now, usegmt=True).encode()
    return (b"date", _date[1])


def dated(send: Send) -> Send:
    """`send`, with the gateway's Date added to a response start without one (its own pages and
    errors, an upstream reply that had none: RFC 9110 §6.6.1); one that has a Date keeps it."""

    async def send_dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            if not any(name.lower() == b"date" for name, _ in headers):
                message = {**message, "headers": [*headers, _now_date()]}
        await send(message)

    return send_dated


class CoalescingTransport:
    """Buffers `write`s and flushes them together at the end of the loop step (`call_soon`);
    `close` flushes first. Everything else is the real transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """What `asg-challenge` serves with (`uvicorn.Config(http=HttpProtocol)`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)  # type: ignore[arg-type]
