"""The proxy's own upstream client (`asg_challenge/upstream.py`) against real sockets: a
scripted upstream (asyncio server that answers each request as the test says) for the framing
the stdlib echo server of the other tests never produces: bodies both ways (with a length and
chunked), big and chunked replies, HEAD, replies delimited by close, interim 1xx replies, a
keep-alive connection the upstream closed while idle, timeouts, refused connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from asg_challenge.upstream import Pool, Response, UpstreamError, UpstreamTimeout
from tests.challenge.conftest import free_port

Reply = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Scripted:
    """An upstream whose `reply` decides each answer; returns False to close the connection."""

    reply: Reply
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""


async def _read_body(head: bytes, reader: asyncio.StreamReader) -> bytes:
    lower = head.lower()
    if b"content-length:" in lower:
        n = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return await reader.readexactly(n)
    if b"transfer-encoding: chunked" in lower:
        out = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return out
            out += chunk[:-2]
    return b""


async def _serve(up: Scripted) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                up.heads.append(head)
                up.bodies.append(await _read_body(head, reader))
                if not await up.reply(head, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    up.url = f"http://127.0.0.1:{port}"
    return server


def ok(body: bytes) -> Reply:
    async def reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Up: 1\r\n\r\n%b" % (len(body), body))
        await writer.drain()
        return True

    return reply


@contextlib.asynccontextmanager
async def _running(reply: Reply) -> AsyncIterator[tuple[Scripted, Pool]]:
    """A scripted upstream and a pool to it, both closed afterwards."""
    up = Scripted(reply)
    server = await _serve(up)
    pool = Pool(up.url)
    try:
        yield up, pool
    finally:
        pool.close()
        server.close()


async def _all(resp: Response) -> bytes:
    out = b""
    async for chunk in resp.body():
        out += chunk
    resp.release()
    return out


async def _get(pool: Pool, target: str = "/", method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    resp = await pool.request(method, target, [(b"accept", b"*/*")], None, timeout)
    return resp.status, await _all(resp)


@pytest.mark.asyncio
async def test_keep_alive_one_connection_and_headers_as_sent() -> None:
    async with _running(ok(b"hello")) as (up, pool):
        for _ in range(5):
            assert await _get(pool, "/a%20b?x=1") == (200, b"hello")
        assert up.connections == 1
        first = up.heads[0].decode()
        assert first.startswith("GET /a%20b?x=1 HTTP/1.1\r\n")
        assert f"host: {up.url.removeprefix('http://')}\r\n" in first
        assert "accept: */*\r\n" in first
        assert "user-agent" not in first.lower()  # no headers of its own


@pytest.mark.asyncio
async def test_request_bodies_with_a_length_and_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for p in (b"one,", b"", b"two,", b"three"):
            yield p

    async with _running(ok(b"ok")) as (up, pool):
        body = b"x" * 300_000
        resp = await pool.request(
            "POST", "/len", [(b"content-length", str(len(body)).encode())], _one(body), 5
        )
        assert (resp.status, await _all(resp)) == (200, b"ok")
        assert up.bodies[-1] == body
        resp = await pool.request("PUT", "/chunked", [], parts(), 5)
        assert (resp.status, await _all(resp)) == (200, b"ok")
        assert b"transfer-encoding: chunked" in up.heads[-1]
        assert up.bodies[-1] == b"one,two,three"
        assert up.connections == 1


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body


@pytest.mark.asyncio
async def test_big_chunked_and_close_delimited_replies_arrive_whole() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: more than the read pause mark

    async def reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if head.startswith(b"GET /big "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
            for i in range(0, len(big), 65536):
                writer.write(big[i : i + 65536])
                await writer.drain()
            return True
        if head.startswith(b"GET /chunked "):
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"ab", b"cde", b"f"):
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
            return True
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil close")  # no length: the close ends it
        await writer.drain()
        return False

    async with _running(reply) as (up, pool):
        assert await _get(pool, "/big") == (200, big)
        assert await _get(pool, "/chunked") == (200, b"abcdef")
        assert up.connections == 1
        # As the proxy reads a reply: whole if it is all in, then the connection is reused
        # (reading resumed even when the reply filled the buffer up to the pause mark).
        for _ in range(3):
            resp = await pool.request("GET", "/big", [], None, 5)
            await asyncio.sleep(0.2)
            whole = resp.take_ready()
            assert (whole if whole is not None else await _all(resp)) == big
            resp.release()
            resp.release()  # twice: still one connection in the pool, not two
        assert up.connections == 1 and len(pool.idle) == 1
        assert await _get(pool, "/eof") == (200, b"until close")
        assert await _get(pool, "/chunked") == (200, b"abcdef")  # a new connection after the close
        assert up.connections == 2


@pytest.mark.asyncio
async def test_head_and_interim_replies_do_not_desynchronise_the_connection() -> None:
    async def reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if head.startswith(b"HEAD "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        elif head.startswith(b"GET /early "):
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
        await writer.drain()
        return True

    async with _running(reply) as (_up, pool):
        resp = await pool.request("HEAD", "/", [], None, 5)
        assert resp.status == 200 and (b"Content-Length", b"1000") in resp.raw_headers
        assert await _all(resp) == b""
        assert await _get(pool) == (200, b"body")
        resp = await pool.request("GET", "/early", [], None, 5)
        assert resp.status == 204 and not any(k == b"Link" for k, _ in resp.raw_headers)
        assert await _all(resp) == b""
        assert await _get(pool) == (200, b"body")


@pytest.mark.asyncio
async def test_a_keep_alive_connection_the_upstream_dropped_is_replaced_not_an_error() -> None:
    served: dict[tuple[str, int], int] = {}  # requests per connection (by client address)

    async def reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        peer = writer.get_extra_info("peername")
        n = served[peer] = served.get(peer, 0) + 1
        if b" /race " in head.split(b"\r\n", 1)[0] and n == 2:
            return False  # its idle timeout fired as the request came: closed, no reply
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return not head.startswith(b"GET /idle ")  # /idle: closed after the reply, unannounced

    async with _running(reply) as (up, pool):
        assert await _get(pool, "/race") == (200, b"ok")
        assert await _get(pool, "/race") == (200, b"ok")  # retried once on a new connection
        assert up.connections == 2
        assert await _get(pool, "/idle") == (200, b"ok")
        await asyncio.sleep(0.05)
        assert await _get(pool, "/x") == (200, b"ok")  # the closed one is not picked
        assert up.connections == 3
        with pytest.raises(UpstreamError):  # a request with a body is not sent twice
            await pool.request("POST", "/race", [(b"content-length", b"1")], _one(b"x"), 5)
        assert up.connections == 3


@pytest.mark.asyncio
async def test_timeouts_refusals_and_cut_replies_are_typed() -> None:
    async def reply(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if head.startswith(b"GET /slow "):
            await asyncio.sleep(2)
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with _running(reply) as (up, pool):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamTimeout):
            await _get(pool, "/slow", timeout=0.3)
        assert 0.25 <= loop.time() - t0 < 1.5
        assert len(up.heads) == 1  # a timeout is never retried
        resp = await pool.request("GET", "/cut", [], None, 5)
        with pytest.raises(UpstreamError):
            await _all(resp)
        with pytest.raises(UpstreamError) as refused:
            await _get(Pool(f"http://127.0.0.1:{free_port()}"))
        assert not isinstance(refused.value, UpstreamTimeout)
