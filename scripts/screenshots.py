"""`make screenshots`: a PNG of each Console panel, and of the web labeler's page, under
docs/screenshots/, from a real stack with simulated workers, in Debian's Chromium
(/usr/bin/chromium) through Playwright."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from asg_grpc.devstack import Stack, free_addr

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
# The labeling page's sample image, drawn here: nothing is fetched from outside.
CAT_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="480" height="320" viewBox="0 0 480 320">
<rect width="480" height="320" fill="#dbe7f3"/><rect y="250" width="480" height="70" fill="#b9cfa0"/>
<polygon points="180,110 200,40 235,95" fill="#e8a25c"/>
<polygon points="300,110 280,40 245,95" fill="#e8a25c"/>
<ellipse cx="240" cy="230" rx="95" ry="60" fill="#e8a25c"/><circle cx="240" cy="140" r="70" fill="#e8a25c"/>
<circle cx="215" cy="130" r="9" fill="#1b1f24"/><circle cx="265" cy="130" r="9" fill="#1b1f24"/>
<polygon points="232,155 248,155 240,165" fill="#b5524b"/>
<path d="M330 240 q70 -10 60 -80" stroke="#e8a25c" stroke-width="16" fill="none" stroke-linecap="round"/>
</svg>"""
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
            labeling_page(stack, auth, browser)
            browser.close()
    print(f"screenshots in {OUT}")


def labeling_page(stack: Stack, auth: dict[str, str], browser: Browser) -> None:
    """`asg-worker --labeler web` with a question on screen, at both widths."""
    token = stack.dev_workers(4)[3]  # the simulated ones hold 0..2
    port = free_addr().rsplit(":", 1)[1]
    stack.spawn(
        "web-worker",
        ["asg-worker", "--server", stack.grpc_addr, "--labeler", "web", "--answer-timeout", "0"],
        env={"ASG_WORKER_TOKEN": token, "ASG_WORKER_WEB_PORT": port},
    )
    # Ten labels needed: the simulated workers cannot settle it before the person sees it.
    httpx.post(
        f"{stack.base_url}/v1/tasks",
        headers=auth,
        json={
            "type": "image_classification",
            "data_url": "https://example.com/img/cat.svg",
            "label_spec": {"question": "Which animal is in the picture?", "options": ["cat", "dog", "bird"]},
            "consensus_threshold": 10,
        },
    )
    deadline = time.monotonic() + 30
    while True:  # the agent starts serving its page once it has read its settings
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for width, suffix in ((1280, ""), (390, "-390")):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.route("https://example.com/**", lambda r: r.fulfill(body=CAT_SVG, content_type="image/svg+xml"))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("[data-testid=image]", timeout=30_000)
        page.wait_for_function("() => document.querySelector('[data-testid=image]').complete")
        page.screenshot(path=OUT / f"labeler{suffix}.png", full_page=True)
        page.close()


if __name__ == "__main__":
    main()
