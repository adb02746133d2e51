"""The proxy against a real upstream: pass-through, headers and cookies stripped, timeouts,
connect failures, redirects, odd targets, reserved paths, rules and sampling applied live."""

from __future__ import annotations

import socket
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from tests.challenge.conftest import (
    BROWSER_HEADERS,
    UPSTREAM_DATE,
    Gateway,
    Upstream,
    free_port,
    start_gateway,
    stop_gateway,
)


def test_pass_through_strips_hop_by_hop_and_gateway_cookies(gateway: Gateway, upstream: Upstream) -> None:
    gateway.config(risk_threshold=1.0)
    r = httpx.get(
        f"{gateway.url}/shop/item?id=7",
        headers={
            "Connection": "keep-alive, X-Private-Hop", "X-Private-Hop": "secret", "X-Gateway-Key-Like": "ok",
            "Cookie": "cg_sid=abc; site=1; cg_pass=zzz", "X-Forwarded-For": "203.0.113.9",
        },
    )  # fmt: skip
    assert r.status_code == 200, r.text
    hit = r.json()
    assert hit["path"] == "/shop/item?id=7"
    seen = {k.lower(): v for k, v in hit["headers"].items()}
    assert "x-private-hop" not in seen
    assert seen["cookie"] == "site=1"
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["host"] == upstream.url.removeprefix("http://")
    cookies = r.headers.get_list("set-cookie")
    assert any(c.startswith("site=1") for c in cookies)
    assert not any(c.startswith("cg_pass=forged") for c in cookies)
    assert "keep-alive" not in r.headers


def test_plain_httpx_bot_never_reaches_the_upstream(gateway: Gateway, upstream: Upstream) -> None:
    before = upstream.count()
    for path in ("/", "/api/data", "/login"):
        r = httpx.get(f"{gateway.url}{path}")
        assert r.status_code == 403
        assert r.json() == {"error": "challenge_required"}
    page = httpx.get(f"{gateway.url}/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "A quick check" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert upstream.count() == before


def test_a_browser_like_client_passes_below_the_default_threshold(
    gateway: Gateway, upstream: Upstream
) -> None:
    before = upstream.count()
    r = httpx.get(f"{gateway.url}/welcome", headers=BROWSER_HEADERS)
    assert r.status_code == 200 and r.json()["path"] == "/welcome"
    assert upstream.count() == before + 1


def test_threshold_zero_challenges_navigation_with_a_page_and_api_with_json(gateway: Gateway) -> None:
    gateway.config(risk_threshold=0.0)
    page = httpx.get(f"{gateway.url}/welcome", headers=BROWSER_HEADERS)
    assert page.status_code == 200 and '<form method="post" action="/.cg/answer"' in page.text
    api = httpx.get(f"{gateway.url}/api/x", headers={**BROWSER_HEADERS, "Sec-Fetch-Mode": "cors"})
    assert api.status_code == 403 and api.json() == {"error": "challenge_required"}


def test_proxy_timeout_is_504(gateway: Gateway) -> None:
    gateway.config(risk_threshold=1.0, proxy_timeout=1.0)
    t0 = time.monotonic()
    r = httpx.get(f"{gateway.url}/slow", timeout=10)
    took = time.monotonic() - t0
    assert r.status_code == 504 and "proxy_timeout" in r.json()["error"]
    assert 0.9 <= took < 2.5


def test_connect_failure_is_502(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, f"http://127.0.0.1:{free_port()}")
    try:
        gw.config(risk_threshold=1.0)
        r = httpx.get(f"{gw.url}/anything")
        assert r.status_code == 502 and r.json() == {"error": "upstream unreachable"}
    finally:
        stop_gateway(gw)


def test_redirects_are_passed_through_not_followed(gateway: Gateway, upstream: Upstream) -> None:
    gateway.config(risk_threshold=1.0)
    before = len(upstream.hits)
    r = httpx.get(f"{gateway.url}/redir", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "http://169.254.169.254/latest/meta-data/"
    assert len(upstream.hits) == before + 1


def raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def header_values(reply: bytes, name: bytes) -> list[bytes]:
    """Every value of one header in a raw HTTP/1.1 reply, as it came over the socket."""
    head = reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [v.strip() for k, _, v in (line.partition(b":") for line in head) if k.strip().lower() == name]


def test_a_proxied_reply_carries_one_date_the_upstreams(gateway: Gateway, upstream: Upstream) -> None:
    """Before, uvicorn put its own Date before the upstream's: two Date headers. Now the
    upstream's alone; one without a Date gets the gateway's, and so do the gateway's own pages."""
    gateway.config(risk_threshold=1.0)
    get = b"GET %s HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n"
    dated = raw_request(gateway.url, get % b"/dated")
    assert dated.startswith(b"HTTP/1.1 200 "), dated[:200]
    assert header_values(dated, b"date") == [UPSTREAM_DATE.encode()]
    for path in (b"/undated", b"/plain", b"/dashboard/api/metrics"):  # no Date, today's, the gateway's own
        reply = raw_request(gateway.url, get % path)
        [date] = header_values(reply, b"date")
        assert abs(parsedate_to_datetime(date.decode()).timestamp() - time.time()) < 5, (path, date)


def test_absolute_form_and_foreign_host_reach_only_the_upstream(gateway: Gateway, upstream: Upstream) -> None:
    gateway.config(risk_threshold=1.0)
    reply = raw_request(
        gateway.url,
        b"GET http://evil.example/steal HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    status = reply.split(b"\r\n", 1)[0]
    assert b" 400 " in status or b" 200 " in status
    if b" 200 " in status:
        assert upstream.hits[-1]["path"] == "/steal"
        assert upstream.hits[-1]["headers"].get("host") == upstream.url.removeprefix("http://")
    r = httpx.get(f"{gateway.url}/x", headers={"Host": "evil.example"})
    assert r.status_code == 200
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert seen["host"] == upstream.url.removeprefix("http://")
    assert seen["x-forwarded-host"] == "evil.example"


def test_path_is_normalised_once_and_reserved_prefixes_never_proxied(
    gateway: Gateway, upstream: Upstream
) -> None:
    gateway.config(risk_threshold=1.0)
    before = upstream.count()
    sneaky = raw_request(
        gateway.url, b"GET /shop/../dashboard/api/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert b" 401 " in sneaky.split(b"\r\n", 1)[0]
    encoded = raw_request(
        gateway.url, b"GET /%2e%2e/.cg/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert b" 404 " in encoded.split(b"\r\n", 1)[0]
    assert upstream.count() == before
    r = raw_request(gateway.url, b"GET /a/./b//c/%2e%2e/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 200 " in r.split(b"\r\n", 1)[0]
    assert upstream.hits[-1]["path"] == "/a/b/d"


def test_rules_priority_disabled_patch_and_delete_apply_live(gateway: Gateway) -> None:
    gateway.config(risk_threshold=0.0)
    with gateway.dash() as d:
        broad = d.post(
            "/proxy-rules", json={"pattern": "/public", "match_type": "prefix", "priority": 10}
        ).json()
        narrow = d.post(
            "/proxy-rules",
            json={"pattern": "/public/secret", "match_type": "exact", "priority": 100, "action": "challenge"},
        ).json()
        assert httpx.get(f"{gateway.url}/public/page").status_code == 200
        assert httpx.get(f"{gateway.url}/public/secret").status_code == 403
        assert httpx.get(f"{gateway.url}/other").status_code == 403
        d.patch(f"/proxy-rules/{narrow['id']}", json={"enabled": False})
        assert httpx.get(f"{gateway.url}/public/secret").status_code == 200
        d.patch(f"/proxy-rules/{narrow['id']}", json={"enabled": True, "priority": 1})
        assert httpx.get(f"{gateway.url}/public/secret").status_code == 200  # the broad rule now wins
        regex = d.post("/proxy-rules", json={"pattern": r"^/img/.*\.png$", "match_type": "regex"}).json()
        assert httpx.get(f"{gateway.url}/img/a.png").status_code == 200
        assert d.delete(f"/proxy-rules/{broad['id']}").status_code == 204
        assert d.delete(f"/proxy-rules/{regex['id']}").status_code == 204
        assert httpx.get(f"{gateway.url}/public/page").status_code == 403
        assert httpx.get(f"{gateway.url}/img/a.png").status_code == 403


def test_sample_rate_zero_is_never_challenged(gateway: Gateway) -> None:
    gateway.config(risk_threshold=0.0)
    with gateway.dash() as d:
        off = d.post("/apikeys", json={"label": "monitor", "sample_rate": 0.0}).json()
        on = d.post("/apikeys", json={"label": "all", "sample_rate": 1.0}).json()
    for _ in range(5):
        assert httpx.get(f"{gateway.url}/p", headers={"X-Gateway-Key": off["raw_key"]}).status_code == 200
    assert httpx.get(f"{gateway.url}/p", headers={"X-Gateway-Key": on["raw_key"]}).status_code == 403
    assert httpx.get(f"{gateway.url}/p", headers={"X-Gateway-Key": "hg_made_up"}).status_code == 403
