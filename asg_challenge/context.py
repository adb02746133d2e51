"""Who a request comes from: client IP (socket, or X-Forwarded-For via a trusted proxy only),
its network, session id (signed `cg_sid` cookie, else a hash of network, UA and language), the
gateway key, and the header signals the risk heuristic reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from asg_challenge import tokens
from asg_challenge.domain import AUTOMATION_UA, RequestSignals, client_ip, network_of
from asg_challenge.gateway import Gateway, Session

SID_COOKIE, PASS_COOKIE = "cg_sid", "cg_pass"
GATEWAY_COOKIES = (SID_COOKIE, PASS_COOKIE)
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

    @property
    def key_id(self) -> str:
        return self.key["id"] if self.key else ""


def is_navigation(request: Request) -> bool:
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def client_of(request: Request, gw: Gateway) -> Client:
    """The request's client; raises Forbidden for an unknown or revoked gateway key."""
    peer = request.client.host if request.client else "0.0.0.0"
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), gw.settings.trusted_proxies)
    net = network_of(ip)
    ua = request.headers.get("user-agent", "")
    cookie = request.cookies.get(SID_COOKIE)
    sid = tokens.session_from_cookie(gw.secret, cookie) if cookie else None
    new = sid is None
    if sid is None:
        seed = f"{net}|{ua}|{request.headers.get('accept-language', '')}"
        sid = hashlib.sha256(gw.secret + seed.encode()).hexdigest()[:24]
    return Client(
        ip=ip, net=net, sid=sid, new_sid=new, ua=ua, host=request.headers.get("host", ""),
        key=gw.key_for(request.headers.get(KEY_HEADER)), navigation=is_navigation(request),
        https=request.url.scheme == "https",
    )  # fmt: skip


def observe(request: Request, c: Client, s: Session, now: float) -> RequestSignals:
    """Record the request in its session's features and return its header signals."""
    h = request.headers
    s.requests += 1
    s.last_seen = now
    s.times.append(now)
    s.html += int(c.navigation)
    s.non_get += int(request.method != "GET")
    if len(s.paths) < 1000:
        s.paths.add(request.url.path)
    s.header_count = len(h)
    s.has_lang = bool(h.get("accept-language"))
    s.automation_ua = not c.ua or AUTOMATION_UA.search(c.ua) is not None
    s.cookie_back = s.cookie_back or not c.new_sid
    return RequestSignals(
        user_agent=c.ua, accept=h.get("accept", ""), accept_language=h.get("accept-language", ""),
        accept_encoding=h.get("accept-encoding", ""), sec_fetch_mode=h.get("sec-fetch-mode", ""),
        sec_ch_ua=h.get("sec-ch-ua", ""), navigation=c.navigation, recent_requests=s.recent(now, 10.0),
    )  # fmt: skip


def sid_cookie(gw: Gateway, c: Client) -> str:
    secure = "; Secure" if c.https else ""
    value = tokens.session_cookie(gw.secret, c.sid)
    return f"{SID_COOKIE}={value}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax{secure}"


def pass_cookie(token: str, ttl: int, https: bool) -> str:
    secure = "; Secure" if https else ""
    return f"{PASS_COOKIE}={token}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}"
