"""A lean HTTP/1.1 client for the one upstream: asyncio protocol, httptools' C parser, a pool of
keep-alive connections. It does what the proxy needs and no more (no redirects, no decompression,
no cookie jar, no headers of its own but Host and the body framing), at about a fifth of
aiohttp's CPU per request (docs/benchmarks.md, "Challenge gateway").

Failures are typed: `UpstreamTimeout` (connect or a read took longer than the timeout) and
`UpstreamError` (refused, reset, a malformed reply, cut mid-body)."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 256 * 1024  # buffered response bytes at which the upstream socket stops being read
MAX_IDLE = 256  # idle keep-alive connections kept


class UpstreamError(Exception):
    """The upstream could not be reached or its reply was cut or malformed."""


class UpstreamTimeout(UpstreamError):
    """Connecting or one read took longer than the timeout."""


class _Conn(asyncio.Protocol):
    """One connection; parses one response at a time into status, headers and body chunks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.response: Response | None = None
        self.writable: asyncio.Future[None] | None = None  # set while the transport is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        r = self.response
        if r is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        try:
            r.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            r.fail(UpstreamError("upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            r.fail(UpstreamError(f"malformed upstream reply: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()
        if self.response is not None:
            self.response.lost()

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        w, self.writable = self.writable, None
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """The upstream's reply: `status` and `raw_headers` once `start()` returns, then `body()`."""

    def __init__(self, conn: _Conn, pool: Pool, head: bool, timeout: float) -> None:
        self.conn, self.pool, self.head, self.timeout = conn, pool, head, timeout
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.got_bytes = False
        self.framed = False  # Content-Length or chunked: the end is known without EOF
        self.keep_alive = False
        self.released = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.got_bytes = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))
        low = name.lower()
        if low == b"content-length" or (low == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            # An interim reply (100 Continue, 103 Early Hints): the real one follows.
            self.raw_headers, self.framed, self.status = [], False, 0
            return
        self.headers_done = True
        if self.status in (204, 304):
            self.framed = True  # never a body
        if self.head:
            self.complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= HIGH_WATER and not self.paused and self.conn.transport is not None:
            self.paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of an interim reply
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets after
        self.complete = True
        self._wake()

    # events from the connection
    def fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    def lost(self) -> None:
        if self.headers_done and not self.framed and not self.complete:
            self.complete = True  # a reply delimited by the connection's close
        self.fail(UpstreamError("upstream closed the connection"))

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        """Until the next parser event, at most `timeout` (a read timeout, as aiohttp's
        sock_read): one timer handle, cheaper than asyncio.timeout's context."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(self.timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    async def start(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    def take_ready(self) -> bytes | None:
        """The body if it all came with the headers (the common small reply), else None."""
        if self.complete and self.error is None:
            body = b"".join(self.chunks)
            self.chunks.clear()
            self._drained()
            return body
        return None

    def _drained(self) -> None:
        """All buffered bytes handed on: reading resumes if it was paused."""
        self.buffered = 0
        if self.paused and self.conn.transport is not None:
            self.paused = False
            self.conn.transport.resume_reading()

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; raises UpstreamError if the reply is cut."""
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < HIGH_WATER // 2 and self.conn.transport is not None:
                    self.paused = False
                    self.conn.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            if self.error is not None:
                raise self.error
            await self._wait()

    def release(self) -> None:
        """Back to the pool if the reply was read to its end and the upstream keeps the
        connection; else closed. Once: a second call does nothing."""
        if self.released:
            return
        self.released = True
        conn = self.conn
        conn.response = None
        reusable = self.complete and not self.chunks and self.error is None and self.framed and not self.head
        if reusable and self.keep_alive and not conn.closed:
            self.pool.put(conn)
        else:
            conn.close()


class Pool:
    """Keep-alive connections to one `http(s)://host:port`."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host = u.hostname or ""
        self.secure = u.scheme == "https"
        self.port = u.port or (443 if self.secure else 80)
        self.netloc = u.netloc.encode("idna")
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if self.secure else None
        self.idle: list[_Conn] = []

    def put(self, conn: _Conn) -> None:
        if len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn.close()

    async def _connect(self, timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Conn, self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.secure else None,
                )  # fmt: skip
        except TimeoutError:
            raise UpstreamTimeout(f"no connection within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from None
        return conn

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        timeout: float,
    ) -> Response:
        """Send the request, return once the status line and headers are in. A body-less
        request that finds a pooled connection closed under it is retried once on a new one."""
        head = self._head(method, target, headers, chunked=body is not None and not _has_length(headers))
        for attempt in (0, 1):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self._connect(timeout)
            while reused and conn.closed and self.idle:
                conn = self.idle.pop()
            if conn.closed:
                conn = await self._connect(timeout)
                reused = False
            resp = Response(conn, self, method == "HEAD", timeout)
            conn.response = resp
            try:
                assert conn.transport is not None
                if body is None:
                    conn.transport.write(head)
                else:
                    await self._send_body(conn, head, body, chunked=head.endswith(b"chunked\r\n\r\n"))
                await resp.start()
            except UpstreamTimeout:
                conn.response = None
                conn.close()
                raise
            except UpstreamError:
                conn.response = None
                conn.close()
                if attempt == 0 and reused and body is None and not resp.got_bytes:
                    continue  # a stale keep-alive connection: the upstream closed it while idle
                raise
            except BaseException:
                conn.response = None
                conn.close()
                raise
            return resp
        raise AssertionError("unreachable")

    def _head(self, method: str, target: str, headers: list[tuple[bytes, bytes]], *, chunked: bool) -> bytes:
        parts = [f"{method} {target} HTTP/1.1\r\nhost: ".encode("latin-1"), self.netloc, b"\r\n"]
        for k, v in headers:
            parts += (k, b": ", v, b"\r\n")
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    @staticmethod
    async def _send_body(conn: _Conn, head: bytes, body: AsyncIterator[bytes], *, chunked: bool) -> None:
        transport = conn.transport
        assert transport is not None
        transport.write(head)
        async for chunk in body:
            if conn.closed:
                raise UpstreamError("upstream closed the connection")
            if not chunk:
                continue
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if conn.writable is not None:
                await conn.writable  # the upstream reads slower than the client sends
        if chunked:
            transport.write(b"0\r\n\r\n")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("the upstream did not answer within the timeout"))


def _has_length(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-length" for k, _ in headers)
