"""Who a request comes from: client IP (socket, or X-Forwarded-For via a trusted proxy only),
its network, whether it came over https (the listener's own TLS, or X-Forwarded-Proto from a
trusted proxy), session id (signed session cookie, else a hash of network, UA and language), the
gateway key, and the header signals the risk heuristic reads.

Cookie names follow the scheme: over https `__Host-cg_sid` / `__Host-cg_pass` (Secure, Path=/,
no Domain: a sibling subdomain cannot plant or overwrite them); over plain http, where a browser
drops Secure cookies, `cg_sid` / `cg_pass`. Each scheme reads only its own names."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from asg_challenge import tokens
from asg_challenge.domain import (
    RequestSignals,
    client_ip,
    heuristic_risk,
    is_automation_ua,
    is_trusted,
    network_of,
)
from asg_challenge.gateway import Gateway, Session
from asg_challenge.ml import SNAPSHOT_AT, features

SID_COOKIE, PASS_COOKIE = "cg_sid", "cg_pass"
HOST_PREFIX = "__Host-"
GATEWAY_COOKIES = (SID_COOKIE, PASS_COOKIE, HOST_PREFIX + SID_COOKIE, HOST_PREFIX + PASS_COOKIE)


def cookie_name(base: str, https: bool) -> str:
    """`__Host-` + `base` over https, `base` over plain http."""
    return HOST_PREFIX + base if https else base


KEY_HEADER = "x-gateway-key"


@dataclass
class Client:
    ip: str
    net: str
    sid: str
    new_sid: bool  # no valid cg_sid came with the request: set one on the reply
    ua: str
    host: str
    key: dict[str, Any] | None
    navigation: bool
    https: bool
    headers: dict[str, str]  # the request's, by lower-case name (the first of repeated ones)
    peer: str  # the socket's address
    cookies: dict[str, str]

    @property
    def key_id(self) -> str:
        return self.key["id"] if self.key else ""

    @property
    def pass_cookie_name(self) -> str:
        return cookie_name(PASS_COOKIE, self.https)


def headers_of(request: Request) -> dict[str, str]:
    """The request's headers as a dict, built once: starlette's Headers scans its list on
    every lookup, and one decision reads a dozen of them."""
    # reversed: of repeated names the first one is the one kept
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(request.scope["headers"])}


def is_navigation(method: str, h: dict[str, str]) -> bool:
    mode = h.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return method == "GET" and "text/html" in h.get("accept", "")


def client_of(request: Request, gw: Gateway) -> Client:
    """The request's client; raises Forbidden for an unknown or revoked gateway key."""
    scope = request.scope
    h = headers_of(request)
    peer = scope["client"][0] if scope.get("client") else "0.0.0.0"
    ip = client_ip(peer, h.get("x-forwarded-for"), gw.settings.trusted_proxies)
    net = network_of(ip)
    ua = h.get("user-agent", "")
    https = is_https(scope.get("scheme") == "https", h, peer, gw)
    cookies = request.cookies if "cookie" in h else {}
    cookie = cookies.get(cookie_name(SID_COOKIE, https))
    sid = tokens.session_from_cookie(gw.secret, cookie) if cookie else None
    new = sid is None
    if sid is None:
        sid = _sid_for(gw.secret, f"{net}|{ua}|{h.get('accept-language', '')}")
    return Client(
        ip=ip, net=net, sid=sid, new_sid=new, ua=ua, host=h.get("host", ""),
        key=gw.key_for(h.get(KEY_HEADER)), navigation=is_navigation(scope["method"], h),
        https=https, headers=h, peer=peer, cookies=cookies,
    )  # fmt: skip


@functools.lru_cache(maxsize=8192)
def _sid_for(secret: bytes, seed: str) -> str:
    """The session id of a client without a valid session cookie (cached: a cookie-less
    client sends the same seed with every request)."""
    return hashlib.sha256(secret + seed.encode()).hexdigest()[:24]


def is_https(tls: bool, h: dict[str, str], peer: str, gw: Gateway) -> bool:
    """The client's scheme: the listener's own, or a trusted proxy's first X-Forwarded-Proto."""
    if tls:
        return True
    proto = h.get("x-forwarded-proto")
    if proto is None or not gw.settings.trusted_proxies:
        return False
    return proto.split(",")[0].strip().lower() == "https" and is_trusted(peer, gw.settings.trusted_proxies)


def observe(request: Request, c: Client, s: Session, now: float, *, site: bool = True) -> RequestSignals:
    """Record the request in its session's features and return its header signals. The
    gateway's own challenge requests (`site=False`) update the header signals only: volume,
    timing and request mix describe the session's traffic to the site, so that a challenge's
    answer POST does not itself look like a feature of humans."""
    h = c.headers
    s.last_seen = now
    if site:
        s.requests += 1
        s.times.append(now)
        s.html += int(c.navigation)
        s.non_get += int(request.scope["method"] != "GET")
        if len(s.paths) < 1000:
            s.paths.add(request.scope["path"])
    s.header_count = len(h)
    s.has_lang = bool(h.get("accept-language"))
    s.automation_ua = is_automation_ua(c.ua)
    s.cookie_back = s.cookie_back or not c.new_sid
    signals = RequestSignals(
        user_agent=c.ua, accept=h.get("accept", ""), accept_language=h.get("accept-language", ""),
        accept_encoding=h.get("accept-encoding", ""), sec_fetch_mode=h.get("sec-fetch-mode", ""),
        sec_ch_ua=h.get("sec-ch-ua", ""), navigation=c.navigation, recent_requests=s.recent(now, 10.0),
    )  # fmt: skip
    s.header_score = heuristic_risk(signals)
    if site and s.requests in SNAPSHOT_AT:
        s.snapshots.append(features(s))
    return signals


def _set_cookie(base: str, value: str, max_age: int, https: bool) -> str:
    """Host-only (no Domain), HttpOnly, SameSite=Lax, Path=/; Secure and `__Host-` on https."""
    secure = "; Secure" if https else ""
    name = cookie_name(base, https)
    return f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"


def sid_cookie(gw: Gateway, c: Client) -> str:
    return _sid_cookie(gw.secret, c.sid, c.https)


@functools.lru_cache(maxsize=8192)
def _sid_cookie(secret: bytes, sid: str, https: bool) -> str:
    """Cached: a client that does not send its cookie back gets the same one every time."""
    return _set_cookie(SID_COOKIE, tokens.session_cookie(secret, sid), 86400, https)


def pass_cookie(token: str, ttl: int, https: bool) -> str:
    return _set_cookie(PASS_COOKIE, token, ttl, https)
