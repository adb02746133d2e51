"""The Console's promises that test_console.py's main flow does not pin, in Debian's Chromium:
counts that move by themselves, the receipt as a download, the local explorer link, views that
survive a reload, 390 px, the keyboard alone, and the empty and error states.

Skipped, saying why, when the playwright package or /usr/bin/chromium is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from tests.browser.test_console import PNG, submit  # noqa: E402 - after the skips above

pytestmark = pytest.mark.slow
PANELS = ("#/overview", "#/tasks", "#/quality", "#/webhooks", "#/settings")
NAV = ("Overview", "Tasks", "Quality", "Webhooks", "Settings & usage", "Sign out")


@pytest.fixture(scope="module")
def states_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("console-states"), ASG_BLOCK_INTERVAL="0.5") as s:
        yield s


@pytest.fixture
def page(states_stack: Stack) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.route("https://example.com/**", lambda r: r.fulfill(body=PNG, content_type="image/png"))
        pg = context.new_page()
        pg.errors = []
        pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        yield pg
        browser.close()


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/console/")
    page.fill("#api-key", key)
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#sign-out")).to_be_visible()


def fits(page: Any) -> bool:
    """Nothing wider than the viewport: readable without sideways scrolling."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


UNREACHABLE = """() => Array.from(document.querySelectorAll(
  "a[href], button:not([disabled]), select, input, textarea, summary"))
  .filter((e) => e.tabIndex < 0 || getComputedStyle(e).visibility === "hidden"
    || e.getClientRects().length === 0)
  .map((e) => e.outerHTML.slice(0, 80))"""


def unreachable(page: Any) -> list[str]:
    """Controls that Tab cannot reach (out of the tab order, or not rendered)."""
    return list(page.evaluate(UNREACHABLE))


def loaded(page: Any) -> None:
    page.wait_for_selector("main .region > :not(.loading)")


def test_counts_move_the_receipt_downloads_and_views_survive_a_reload(states_stack: Stack, page: Any) -> None:
    expect, base = sync_api.expect, states_stack.base_url
    key = register(base)["api_key"]
    ids = submit(base, key, 6)
    sign_in(page, base, key)
    settled = page.locator("[data-testid=overview-cards] .card").nth(3)
    expect(settled).to_contain_text("Settled")
    expect(settled.locator(".card-value")).to_have_text("0")  # nobody labels yet
    states_stack.start_workers(3)
    expect(settled.locator(".card-value")).to_have_text("6", timeout=60_000)  # no reload: it polls

    page.goto(f"{base}/console/#/tasks")
    page.select_option("#sort", "created_at_asc")
    page.select_option("#per-page", "10")
    expect(page.locator("tbody tr").first.locator("a")).to_have_text(ids[0])
    assert "sort=created_at_asc" in page.url and "per_page=10" in page.url
    page.reload()
    expect(page.locator("#sort")).to_have_value("created_at_asc")
    expect(page.locator("#per-page")).to_have_value("10")
    expect(page.locator("tbody tr").first.locator("a")).to_have_text(ids[0])
    assert unreachable(page) == []

    page.locator("tbody tr").first.locator("a").click()
    assert page.url.endswith(f"#/tasks/{ids[0]}")
    page.reload()  # a shared link to a task lands on that task
    expect(page.locator("h1")).to_contain_text(ids[0])
    verdict = page.locator("[data-testid=receipt-verdict]")
    expect(verdict).to_have_text("The receipt verifies.", timeout=30_000)
    txid = page.locator("[data-testid=txid]").inner_text()
    assert unreachable(page) == []
    with page.expect_download() as download:
        page.click("[data-testid=receipt-download]")
    assert download.value.suggested_filename == f"receipt-{ids[0]}.json"
    receipt = json.loads(Path(download.value.path()).read_text())
    assert (receipt["task_id"], receipt["txid"], receipt["network"]) == (ids[0], txid, "local")
    link = page.locator("[data-testid=explorer-link]")
    assert link.get_attribute("href") == f"#/tx/{txid}"  # the local ledger's own page, not WhatsOnChain
    page.set_viewport_size({"width": 390, "height": 844})
    assert fits(page)
    link.click()
    expect(page.locator("[data-testid=tx-txid]")).to_have_text(txid)
    assert fits(page)
    assert page.errors == []


def test_empty_and_error_states_390_px_and_the_keyboard_alone(states_stack: Stack, page: Any) -> None:
    expect, base = sync_api.expect, states_stack.base_url
    key = register(base)["api_key"]  # a customer with nothing yet
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/console/")
    expect(page.locator("#api-key")).to_be_focused()  # sign-in needs no mouse
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("main .empty")).to_contain_text("No tasks yet")
    assert fits(page)

    reached: list[str] = []
    for _ in range(20):  # every control of the header, in order, each with its focus ring
        page.keyboard.press("Tab")
        name, ring = page.evaluate(
            "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.textContent.trim(), s.outlineStyle !== 'none' && s.outlineWidth !== '0px']; })()"
        )
        if name in NAV and name not in reached:
            assert ring, f"{name}: no visible focus"
            reached.append(name)
    assert reached == list(NAV), reached
    page.locator("nav >> text=Tasks").focus()
    page.keyboard.press("Enter")
    expect(page.locator("main .empty")).to_contain_text("No tasks yet")
    assert page.url.endswith("#/tasks")

    for panel in PANELS:
        page.goto(f"{base}/console/{panel}")
        loaded(page)
        assert fits(page), f"{panel} is wider than 390 px"
        assert unreachable(page) == [], panel
    expect(page.locator("main .empty")).to_have_count(0)  # settings has no empty state
    page.goto(f"{base}/console/#/webhooks")
    expect(page.locator("main .empty")).to_contain_text("No webhooks")

    page.goto(f"{base}/console/#/no-such-view")
    expect(page.locator("h1")).to_have_text("Not found")
    page.goto(f"{base}/console/#/tasks/tsk_00000000000000000000000000")
    expect(page.locator(".error-box")).to_contain_text("Could not load this panel")
    expect(page.locator(".error-box button")).to_have_text("Retry now")
    page.errors.clear()  # the 404 itself, logged by Chromium

    # The gateway goes away: the page says it is reconnecting, then recovers by itself.
    page.goto(f"{base}/console/#/overview")
    status = page.locator(".live-status")
    expect(status).to_contain_text("Live", timeout=30_000)
    states_stack.kill("gateway")
    expect(status).to_contain_text("Reconnecting in", timeout=30_000)
    states_stack.spawn("gateway", ["asg-gateway"])
    states_stack.wait_ready()
    expect(status).to_contain_text("Live", timeout=90_000)
    assert all("ERR_CONNECTION_REFUSED" in e or "Failed to load" in e for e in page.errors), page.errors
