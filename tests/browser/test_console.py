"""The Console in Debian's Chromium through Playwright, over a real stack with simulated workers.

Skipped, saying why, when the playwright package or /usr/bin/chromium is missing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("console"), ASG_BLOCK_INTERVAL="0.5") as s:
        yield s


@pytest.fixture
def page(console_stack: Stack) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        # The machine's edge: task images live on example.com, which this sandbox cannot reach.
        context.route(
            "https://example.com/**", lambda route: route.fulfill(body=PNG, content_type="image/png")
        )
        pg = context.new_page()
        pg.errors = []  # type: ignore[attr-defined]
        pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))  # type: ignore[attr-defined]
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
        yield pg
        browser.close()


def submit(base_url: str, key: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        reply = httpx.post(
            f"{base_url}/v1/tasks",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "type": "image_classification",
                "data_url": f"https://example.com/img/{i}.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            },
        )
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["task_id"])
    return ids


def test_console_flow(console_stack: Stack, page: object) -> None:
    pg = page
    expect = sync_api.expect
    base = console_stack.base_url
    key = register(base)["api_key"]
    ids = submit(base, key, 12)

    pg.goto(f"{base}/console/")  # type: ignore[attr-defined]
    pg.fill("#api-key", "sk_sandbox_not_a_real_key")  # type: ignore[attr-defined]
    pg.click("text=Sign in")  # type: ignore[attr-defined]
    expect(pg.locator("#login-error")).to_contain_text("not accepted")  # type: ignore[attr-defined]
    pg.errors.clear()  # type: ignore[attr-defined]  # the refused key's 401, logged by Chromium

    pg.fill("#api-key", key)  # type: ignore[attr-defined]
    pg.keyboard.press("Enter")  # type: ignore[attr-defined]
    cards = pg.locator("[data-testid=overview-cards]")  # type: ignore[attr-defined]
    expect(cards).to_contain_text("Total tasks")
    expect(cards).to_contain_text("12")
    assert key not in pg.url  # type: ignore[attr-defined]
    assert pg.evaluate("document.cookie") == ""  # type: ignore[attr-defined]

    console_stack.start_workers(3)
    # Counts move while workers label and settlement pays: the page polls by itself.
    expect(cards.locator(".card").nth(3)).to_contain_text("12", timeout=60_000)

    pg.click("nav >> text=Tasks")  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=page-of]")).to_have_text("Page 1 / 1")  # type: ignore[attr-defined]
    pg.select_option("#per-page", "10")  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=page-of]")).to_have_text("Page 1 / 2")  # type: ignore[attr-defined]
    pg.click("text=Next →")  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=page-of]")).to_have_text("Page 2 / 2")  # type: ignore[attr-defined]
    assert "page=2" in pg.url  # type: ignore[attr-defined]
    pg.select_option("#sort", "created_at_asc")  # type: ignore[attr-defined]
    first = pg.locator("tbody tr").first.locator("a")  # type: ignore[attr-defined]
    expect(first).to_have_text(ids[0])
    pg.select_option("#filter-status", "pending")  # type: ignore[attr-defined]
    expect(pg.locator(".empty")).to_contain_text("No pending tasks")  # type: ignore[attr-defined]
    pg.reload()  # type: ignore[attr-defined]  # the URL holds the view
    expect(pg.locator("#filter-status")).to_have_value("pending")  # type: ignore[attr-defined]
    pg.select_option("#filter-status", "settled")  # type: ignore[attr-defined]
    first.click()

    expect(pg.locator("h1")).to_contain_text(ids[0])  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=receipt-verdict]")).to_have_text("The receipt verifies.", timeout=30_000)  # type: ignore[attr-defined]
    txid = pg.locator("[data-testid=txid]").inner_text()  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{64}", txid)
    pg.click("[data-testid=explorer-link]")  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=tx-txid]")).to_have_text(txid)  # type: ignore[attr-defined]

    pg.click("nav >> text=Webhooks")  # type: ignore[attr-defined]
    expect(pg.locator(".empty")).to_contain_text("No webhooks")  # type: ignore[attr-defined]
    pg.fill("#wh-url", "https://example.com/hooks/asg")  # type: ignore[attr-defined]
    pg.fill("#wh-secret", "whsec_console_test")  # type: ignore[attr-defined]
    pg.click("text=Create webhook")  # type: ignore[attr-defined]
    expect(pg.locator("td", has_text="https://example.com/hooks/asg")).to_be_visible()  # type: ignore[attr-defined]
    assert "whsec_console_test" not in pg.content()  # type: ignore[attr-defined]
    pg.click("text=Delete")  # type: ignore[attr-defined]
    pg.click("text=Confirm delete")  # type: ignore[attr-defined]
    expect(pg.locator(".empty")).to_contain_text("No webhooks")  # type: ignore[attr-defined]

    pg.click("nav >> text=Settings & usage")  # type: ignore[attr-defined]
    expect(pg.locator("[data-testid=key-hint]")).to_contain_text("sk_sand")  # type: ignore[attr-defined]

    pg.click("#sign-out")  # type: ignore[attr-defined]
    expect(pg.locator("#api-key")).to_be_visible()  # type: ignore[attr-defined]
    assert pg.evaluate("sessionStorage.length") == 0  # type: ignore[attr-defined]
    assert pg.errors == []  # type: ignore[attr-defined]
