"""Cookie names and flags by scheme (docs/challenge.md "Pass cookie"): plain names without
Secure over plain http (a browser would drop a Secure cookie there), `__Host-` names with
Secure behind a trusted TLS proxy or on the gateway's own TLS listener; each scheme reads only
its own names, and X-Forwarded-Proto from an untrusted peer changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.challenge.conftest import (
    GOLD,
    Gateway,
    Upstream,
    client,
    solve,
    start_gateway,
    stop_gateway,
    text_dataset,
)


def set_cookies(r: httpx.Response) -> dict[str, list[str]]:
    """Each Set-Cookie header of `r` and the responses before it (the challenge page sets the
    session cookie, the answer the pass) as name → its attributes, lower-cased."""
    out = {}
    for resp in [*r.history, r]:
        for header in resp.headers.get_list("set-cookie"):
            first, *attrs = (p.strip() for p in header.split(";"))
            out[first.split("=", 1)[0]] = [a.lower() for a in attrs]
    return out


def solve_seen(c: httpx.Client, path: str) -> httpx.Response:
    """`solve`, with the challenge page's Set-Cookie headers kept on the answer's history."""
    seen: list[httpx.Response] = []
    c.event_hooks["response"] = [lambda resp: seen.append(resp)]
    r = solve(c, path)
    c.event_hooks["response"] = []
    r.history = seen[:-1]
    return r


def check_flags(attrs: list[str], *, secure: bool) -> None:
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain") for a in attrs)  # host-only
    assert ("secure" in attrs) is secure


def test_plain_http_uses_plain_names_without_secure(gateway: Gateway) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway) as c:
        r = solve_seen(c, "/x")
        assert r.status_code == 303
        cookies = set_cookies(r)
        assert set(cookies) == {"cg_pass", "cg_sid"}
        for attrs in cookies.values():
            check_flags(attrs, secure=False)
        assert c.get("/x").json()["path"] == "/x"


def test_behind_a_trusted_tls_proxy_cookies_are_host_prefixed_and_secure(
    gateway: Gateway, upstream: Upstream
) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway, **{"X-Forwarded-Proto": "https"}) as c:
        r = solve_seen(c, "/x")
        assert r.status_code == 303
        cookies = set_cookies(r)
        assert set(cookies) == {"__Host-cg_pass", "__Host-cg_sid"}
        for attrs in cookies.values():
            check_flags(attrs, secure=True)
        # httpx, like a browser, will not send Secure cookies over http: hand them over as such
        jar = {name: c.cookies[name] for name in cookies}
    with client(gateway, **{"X-Forwarded-Proto": "https"}) as https:
        https.cookies.update(jar)
        hit = https.get("/x").json()
        assert hit["path"] == "/x" and hit["headers"]["x-forwarded-proto"] == "https"
        assert "cookie" not in hit["headers"]  # the gateway's cookies never reach the upstream
    # the same token under the plain name over https (a cookie a plain-http sibling could plant)
    with client(gateway, **{"X-Forwarded-Proto": "https"}) as planted:
        planted.cookies.update({n.removeprefix("__Host-"): v for n, v in jar.items()})
        assert "A quick check" in planted.get("/x").text
    with client(gateway) as plain:  # and the __Host- cookies are not read over plain http
        plain.cookies.update(jar)
        assert "A quick check" in plain.get("/x").text


@pytest.fixture
def untrusting(tmp_path: Path, upstream: Upstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path, upstream.url, ASG_CHALLENGE_TRUSTED_PROXIES="")
    yield gw
    stop_gateway(gw)


def test_forwarded_proto_from_an_untrusted_peer_is_ignored(untrusting: Gateway) -> None:
    text_dataset(untrusting, GOLD)
    untrusting.config(risk_threshold=0.0)
    with client(untrusting, **{"X-Forwarded-Proto": "https"}) as c:
        r = solve_seen(c, "/x")
        assert r.status_code == 303
        assert set(set_cookies(r)) == {"cg_pass", "cg_sid"}


def test_own_tls_listener_sets_host_prefixed_secure_cookies(tls_gateway: Gateway) -> None:
    text_dataset(tls_gateway, GOLD)
    tls_gateway.config(risk_threshold=0.0)
    with client(tls_gateway) as c:
        r = solve_seen(c, "/x")
        assert r.status_code == 303
        cookies = set_cookies(r)
        assert set(cookies) == {"__Host-cg_pass", "__Host-cg_sid"}
        for attrs in cookies.values():
            check_flags(attrs, secure=True)
        assert c.get("/x").json()["path"] == "/x"  # over https the client sends them back
