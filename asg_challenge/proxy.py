"""Everything that is not a reserved path: decide (key, rule, sample, pass cookie, risk) and
either stream the request to the one configured upstream or challenge it.

The upstream comes from the settings only; the request's Host or target never choose it.
Redirects are passed through, not followed; hop-by-hop headers and the gateway's own cookies
are stripped both ways; a timeout is a 504, a connect failure a 502."""

from __future__ import annotations

import json
import logging
import random
import time
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from asg_challenge.challenge import page_response
from asg_challenge.context import (
    GATEWAY_COOKIES,
    KEY_HEADER,
    Client,
    client_of,
    observe,
    sid_cookie,
)
from asg_challenge.domain import encode_path
from asg_challenge.errors import ChallengeGatewayError
from asg_challenge.gateway import Gateway
from asg_challenge.upstream import Pool, UpstreamError, UpstreamTimeout

log = logging.getLogger("asg_challenge.proxy")
HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection",
}  # fmt: skip
DROP_REQUEST = HOP_BY_HOP | {
    b"host", KEY_HEADER.encode(), b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"cookie",
}  # fmt: skip


def _hop_by_hop(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    """HOP_BY_HOP and whatever the message's Connection header names (names lower-case)."""
    named = [v for k, v in headers if k == b"connection"]
    if not named:
        return HOP_BY_HOP
    return HOP_BY_HOP | {t.strip().lower() for v in named for t in v.split(b",")}


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers for the client: names lower-cased (as ASGI wants), hop-by-hop
    ones and Set-Cookies of the gateway's own names dropped. Kept in bytes: only a Set-Cookie
    is decoded."""
    low = [(k.lower(), v) for k, v in raw]
    drop = _hop_by_hop(low)
    return [
        (k, v)
        for k, v in low
        if k not in drop and not (k == b"set-cookie" and _sets_gateway_cookie(v.decode("latin-1")))
    ]


def _strip_cookies(value: str) -> str:
    kept = [
        p.strip() for p in value.split(";") if p.strip() and p.split("=", 1)[0].strip() not in GATEWAY_COOKIES
    ]
    return "; ".join(kept)


def _sets_gateway_cookie(value: str) -> bool:
    c: SimpleCookie = SimpleCookie()
    try:
        c.load(value)
    except Exception:
        return value.split("=", 1)[0].strip() in GATEWAY_COOKIES
    return any(name in GATEWAY_COOKIES for name in c) or value.split("=", 1)[0].strip() in GATEWAY_COOKIES


async def _json(send: Send, status: int, error: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Proxy:
    """The upstream client is `upstream.Pool`, a lean keep-alive HTTP/1.1 client on httptools:
    the proxy's own cost per request is a fraction of an aiohttp or httpx request's
    (docs/benchmarks.md, "Challenge gateway")."""

    def __init__(self, gw: Gateway, explore: float) -> None:
        self.gw = gw
        self.explore = explore  # share of low-risk sessions challenged anyway (unbiased labels)
        self.pool: Pool | None = None

    async def start(self) -> None:
        self.pool = Pool(self.gw.settings.upstream)

    async def stop(self) -> None:
        if self.pool is not None:
            self.pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        gw = self.gw
        try:
            c = client_of(request, gw)
        except ChallengeGatewayError as exc:
            await _json(send, exc.status, str(exc))
            return
        now = time.time()
        s = gw.session(c.sid, now)
        observe(request, c, s, now)
        path = scope["path"]
        rule = gw.rule_for(path)
        through = (
            (rule is not None and rule.action == "allow")
            or not gw.in_sample(c.sid, c.key)
            or gw.pass_ok(
                c.cookies.get(c.pass_cookie_name),
                sid=c.sid,
                key_id=c.key_id,
                host=c.host,
                ua=c.ua,
                net=c.net,
            )
        )
        if not through:
            risk = gw.score(s)
            through = risk < gw.config.risk_threshold and not (
                self.explore and random.random() < self.explore
            )
        if through:
            await self.forward(request, c, send)
            return
        try:
            resp = page_response(gw, c, s, _target(scope))
        except ChallengeGatewayError as exc:
            extra = [(b"retry-after", str(exc.retry_after).encode())] if hasattr(exc, "retry_after") else []
            await _json(send, exc.status, str(exc), extra)
            return
        await resp(scope, receive, send)

    async def forward(self, request: Request, c: Client, send: Send) -> None:
        assert self.pool is not None
        scope = request.scope
        raw: list[tuple[bytes, bytes]] = scope["headers"]  # names lower-case (ASGI)
        drop = _hop_by_hop(raw) | DROP_REQUEST
        headers = [(k, v) for k, v in raw if k not in drop]
        cookies = [v.decode("latin-1") for k, v in raw if k == b"cookie"]
        cookie = _strip_cookies("; ".join(cookies)) if cookies else ""
        if cookie:
            headers.append((b"cookie", cookie.encode("latin-1")))
        chain = c.headers.get("x-forwarded-for") if c.ip != c.peer else None
        headers.append((b"x-forwarded-for", (f"{chain}, {c.peer}" if chain else c.ip).encode("latin-1")))
        headers.append((b"x-forwarded-proto", b"https" if c.https else b"http"))
        if c.host:
            headers.append((b"x-forwarded-host", c.host.encode("latin-1")))
        method = scope["method"]
        has_body = method not in ("GET", "HEAD", "OPTIONS") or "content-length" in c.headers
        timeout = self.gw.config.proxy_timeout
        try:
            upstream = await self.pool.request(
                method, _target(scope), headers, request.stream() if has_body else None, timeout
            )
        except UpstreamTimeout:
            await _json(send, 504, f"upstream did not answer within proxy_timeout ({timeout:g} s)")
            return
        except UpstreamError as exc:
            log.warning("upstream %s failed: %s", self.gw.settings.upstream, exc)
            await _json(send, 502, "upstream unreachable")
            return
        try:
            out = _response_headers(upstream.raw_headers)
            if c.new_sid:
                out.append((b"set-cookie", sid_cookie(self.gw, c).encode()))
            await send({"type": "http.response.start", "status": upstream.status, "headers": out})
            whole = upstream.take_ready()
            if whole is not None:  # the common small reply: one body message
                await send({"type": "http.response.body", "body": whole})
                return
            try:
                async for chunk in upstream.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError as exc:
                # The status line is gone already: all that is left is to cut the response short.
                log.warning("upstream %s failed mid-body: %s", self.gw.settings.upstream, exc)
                raise
            await send({"type": "http.response.body", "body": b""})
        finally:
            upstream.release()


def _target(scope: Scope) -> str:
    qs = scope["query_string"].decode("latin-1")
    return encode_path(scope["path"]) + (f"?{qs}" if qs else "")
