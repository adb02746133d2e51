"""`make screenshots`: a PNG of each Console panel under docs/screenshots/, from a real stack
with simulated workers, in Debian's Chromium (/usr/bin/chromium) through Playwright."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from asg_grpc.devstack import Stack, free_addr

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, Stack(
        http_addr=free_addr(),
        grpc_addr=free_addr(),
        data_dir=Path(tmp) / "data",
        log_dir=Path(tmp) / "logs",
        env={"ASG_RATE_LIMIT": "off", "ASG_BLOCK_INTERVAL": "0.5"},
    ) as stack:
        base = stack.base_url
        email = f"shots{time.time_ns()}@example.com"
        key = httpx.post(f"{base}/v1/customers", json={"name": "Acme", "email": email}).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        for i in range(40):
            options = ["cat", "dog"] if i % 3 else ["cat", "dog", "bird"]
            httpx.post(
                f"{base}/v1/tasks",
                headers=auth,
                json={
                    "type": "image_classification",
                    "data_url": f"https://example.com/img/{i}.jpg",
                    "label_spec": {"question": "Animal?", "options": options},
                },
            )
        httpx.post(
            f"{base}/v1/webhooks",
            headers=auth,
            json={"callback_url": "https://example.com/hooks/asg", "secret": "whsec_screenshots"},
        )
        stack.start_workers(3, "--accuracy", "0.8", "--seed", "7")
        time.sleep(8)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for width, suffix in ((1280, ""), (390, "-390")):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route("https://example.com/**", lambda r: r.fulfill(body=PNG, content_type="image/png"))
                page.goto(f"{base}/console/")
                page.screenshot(path=OUT / f"login{suffix}.png")
                page.fill("#api-key", key)
                page.keyboard.press("Enter")
                page.wait_for_selector("[data-testid=overview-cards]")
                for name, hash_ in (
                    ("overview", "#/overview"),
                    ("tasks", "#/tasks"),
                    ("quality", "#/quality"),
                    ("webhooks", "#/webhooks"),
                    ("settings", "#/settings"),
                ):
                    page.goto(f"{base}/console/{hash_}")
                    page.wait_for_selector("main .region > :not(.loading)")
                    page.wait_for_timeout(400)
                    page.screenshot(path=OUT / f"{name}{suffix}.png", full_page=True)
                page.goto(f"{base}/console/#/tasks?status=settled")
                page.click("tbody tr a")
                page.wait_for_selector("[data-testid=receipt-verdict]", timeout=30_000)
                page.screenshot(path=OUT / f"task{suffix}.png", full_page=True)
                page.close()
            browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
