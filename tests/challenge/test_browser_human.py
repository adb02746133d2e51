"""A person in Debian's Chromium (Playwright) solves a challenge and reaches the site: the
cookies carry the documented flags (HttpOnly, SameSite=Lax, host-only; Secure and `__Host-`
over https), and the browser is not challenged again until challenge_token_ttl has passed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.challenge.conftest import GOLD, UNKNOWN, Gateway, Upstream, solve_in_browser, text_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def body_json(page: Any) -> dict[str, Any]:
    """The upstream's echo as the browser shows it (Chromium renders JSON as text)."""
    out: dict[str, Any] = json.loads(page.locator("body").inner_text())
    return out


def test_a_browser_solves_a_challenge_reaches_the_upstream_and_passes_until_the_ttl(
    chromium: Any, gateway: Gateway, upstream: Upstream
) -> None:
    text_dataset(gateway, [*GOLD, UNKNOWN])
    gateway.config(risk_threshold=0.0, challenge_token_ttl=4)
    context = chromium.new_context(extra_http_headers={"X-Forwarded-For": "10.1.0.7"})
    page = context.new_page()
    before = upstream.count("/account")

    landed = solve_in_browser(page, f"{gateway.url}/account?tab=1")
    solved_at = time.time()
    assert landed.status == 200 and page.url == f"{gateway.url}/account?tab=1"
    seen = body_json(page)
    assert seen["path"] == "/account?tab=1"
    assert not any(c.startswith("cg_") for c in seen["headers"].get("cookie", "").split("; "))
    assert upstream.count("/account") == before + 1  # the challenge page never reached it

    cookies = {c["name"]: c for c in context.cookies()}
    assert {"cg_pass", "cg_sid"} <= set(cookies)
    for name in ("cg_pass", "cg_sid"):
        c = cookies[name]
        assert c["httpOnly"] and c["sameSite"] == "Lax" and c["path"] == "/", c
        assert not c["secure"], c  # plain http: a Secure cookie would be dropped (docs/challenge.md)
        assert not c["domain"].startswith("."), c  # host-only
    assert abs(cookies["cg_pass"]["expires"] - (solved_at + 4)) < 2  # Max-Age = challenge_token_ttl
    assert page.evaluate("document.cookie") == "site=1"  # the site's own; HttpOnly hides ours
    assert cookies["cg_pass"]["value"] != "forged"  # the upstream's Set-Cookie cg_pass was dropped

    page.goto(f"{gateway.url}/account/settings")
    assert body_json(page)["path"] == "/account/settings"  # not challenged again
    assert upstream.count("/account") == before + 2

    time.sleep(max(0.0, solved_at + 4.5 - time.time()))
    page.goto(f"{gateway.url}/account/settings")
    assert page.locator("h1").inner_text() == "A quick check"  # the TTL passed
    assert upstream.count("/account") == before + 2
    context.close()


def test_over_https_the_browser_keeps_host_prefixed_secure_cookies(
    chromium: Any, tls_gateway: Gateway, upstream: Upstream
) -> None:
    text_dataset(tls_gateway, GOLD)
    tls_gateway.config(risk_threshold=0.0)
    context = chromium.new_context(ignore_https_errors=True)  # the test's self-signed certificate
    page = context.new_page()
    solve_in_browser(page, f"{tls_gateway.url}/secure")
    assert body_json(page)["path"] == "/secure"
    cookies = {c["name"]: c for c in context.cookies()}
    assert set(cookies) == {"__Host-cg_pass", "__Host-cg_sid", "site"}  # no plain cg_* names
    del cookies["site"]
    for c in cookies.values():
        assert c["secure"] and c["httpOnly"] and c["sameSite"] == "Lax" and c["path"] == "/", c
    page.goto(f"{tls_gateway.url}/secure/again")
    assert body_json(page)["path"] == "/secure/again"
    context.close()
