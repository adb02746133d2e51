"""`asg-worker --labeler web` in Debian's Chromium: a person labels with the mouse and the keyboard.

A real stack (core and gateway processes), one web-labeler agent process and one simulated
agent (consensus needs two workers); Chromium drives the agent's page. The labels must reach
the core and the tasks settle, read back over REST. The core is killed and restarted in the
middle: the page shows the reconnecting state, then labels arrive again.

Skipped, saying why, when the playwright package or /usr/bin/chromium is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack, free_addr
from tests.conftest import make_stack, register
from tests.e2e.test_labeling import wait_for
from tests.manifest_servers import HttpsManifestServer

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)
SPAM = "WIN a FREE cruise!!! Click now <script>alert(1)</script>"


class Customer:
    def __init__(self, stack: Stack) -> None:
        key = register(stack.base_url)["api_key"]
        self.http = httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        )

    def submit(self, task_type: str, data_url: str, options: list[str]) -> str:
        reply = self.http.post(
            "/v1/tasks",
            json={
                "type": task_type,
                "data_url": data_url,
                "label_spec": {"question": "Which one?", "options": options},
                "consensus_threshold": 2,
            },
        )
        assert reply.status_code == 202, reply.text
        return str(reply.json()["task_id"])

    def settled(self, task_id: str) -> dict[str, Any] | None:
        """The result once the task is settled (paid on the ledger), else None."""
        reply = self.http.get(f"/v1/tasks/{task_id}/result")
        assert reply.status_code in (200, 202), reply.text
        result = dict(reply.json())
        return result if result["status"] == "settled" else None


@pytest.fixture
def customer(labeling: tuple[Stack, str]) -> Iterator[Customer]:
    who = Customer(labeling[0])
    yield who
    who.http.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[HttpsManifestServer]:
    (tmp_path / "tls").mkdir()
    with HttpsManifestServer(tmp_path / "tls") as server:
        server.files["spam.txt"] = SPAM.encode()
        yield server


IMAGES = {  # data_url → the truth the simulated agent answers, which the person answers too
    "https://example.com/img/mouse.png": "dog",
    "https://example.com/img/skip.png": "cat",
    "https://example.com/img/after.png": "bird",
}


@pytest.fixture
def labeling(tmp_path: Path, site: HttpsManifestServer) -> Iterator[tuple[Stack, str]]:
    """The stack with a web-labeler agent and a simulated one; the labeling page's URL."""
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps({**IMAGES, site.url("spam.txt"): "spam"}))
    # A short lease: a task held by a stream that died is handed out again within seconds.
    with make_stack(tmp_path, ASG_BLOCK_INTERVAL="0.5", ASG_LEASE_SECONDS="10") as stack:
        web_token, sim_token = stack.dev_workers(2)
        port = int(free_addr().rsplit(":", 1)[1])
        stack.spawn(
            "web-worker",
            ["asg-worker", "--server", stack.grpc_addr, "--labeler", "web", "--answer-timeout", "0"],
            env={
                "ASG_WORKER_TOKEN": web_token,
                "ASG_WORKER_WEB_PORT": str(port),
                "SSL_CERT_FILE": str(site.cert),
            },
        )
        stack.spawn(
            "sim-worker",
            ["asg-worker", "--server", stack.grpc_addr, "--labeler", "simulated", "--truth", str(truth_file)],
            env={"ASG_WORKER_TOKEN": sim_token},
        )
        yield stack, f"http://127.0.0.1:{port}/"


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 390, "height": 844})
        # The machine's edge: task images live on example.com, which this sandbox cannot reach.
        context.route("https://example.com/**", lambda r: r.fulfill(body=PNG, content_type="image/png"))
        page = context.new_page()
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()


NEXT_QUESTION = """done => {
  const id = document.getElementById("task-id").textContent;
  return !document.getElementById("question").hidden && id !== "" && !done.includes(id);
}"""


def fits(page: Any) -> bool:
    """Nothing wider than the viewport: readable without sideways scrolling."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def tab_to_first_option(page: Any) -> None:
    """Tab from the question to the first answer button, whose focus ring must show."""
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#options button')"):
            break
    focused = page.evaluate(
        "(() => { const b = document.activeElement; const s = getComputedStyle(b);"
        " return [b.matches('#options button:first-child'), s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused[0] and focused[1] != "none" and focused[2] != "0px", focused


def test_a_person_labels_in_the_browser_and_the_tasks_settle(
    labeling: tuple[Stack, str], site: HttpsManifestServer, customer: Customer, browser_page: Any
) -> None:
    stack, url = labeling
    page, expect = browser_page, sync_api.expect
    by_mouse = customer.submit("image_classification", "https://example.com/img/mouse.png", ["cat", "dog"])
    by_key = customer.submit("text_classification", site.url("spam.txt"), ["ham", "spam"])
    skipped = customer.submit("image_classification", "https://example.com/img/skip.png", ["cat", "dog"])

    page.goto(url)
    connection = page.locator("[data-testid=connection]")
    expect(connection).to_have_attribute("data-state", "connected", timeout=30_000)
    done: list[str] = []
    for _ in range(3):  # the core decides the order; each task gets the way of answering it is for
        page.wait_for_function(NEXT_QUESTION, arg=done, timeout=30_000)
        current = page.locator("[data-testid=task-id]").inner_text()
        if current == by_mouse:
            image = page.locator("[data-testid=image]")
            expect(image).to_be_visible()
            page.wait_for_function("() => document.querySelector('[data-testid=image]').complete")
            assert image.evaluate("img => img.naturalWidth") == 1  # the PNG itself, loaded by the browser
            page.click("button[data-option=dog]")
        elif current == by_key:
            expect(page.locator("[data-testid=text]")).to_have_text(SPAM)  # as text, never as markup
            assert fits(page)  # 390 px wide
            tab_to_first_option(page)
            page.keyboard.press("2")
        else:
            assert current == skipped
            page.keyboard.press("s")
        done.append(current)
        expect(page.locator("[data-testid=last-event]")).to_contain_text(current)
    assert sorted(done) == sorted([by_mouse, by_key, skipped])
    expect(page.locator("[data-testid=skipped]")).to_have_text("1")
    expect(page.locator("[data-testid=labels-done]")).to_have_text("2", timeout=30_000)
    for task_id, label in ((by_mouse, "dog"), (by_key, "spam")):
        task = wait_for(f"{task_id} settled", lambda t=task_id: customer.settled(t))
        assert task["consensus_label"] == label
        assert task["worker_count"] == 2
    expect(page.locator("[data-testid=sats-earned]")).not_to_have_text("0", timeout=60_000)
    expect(page.locator("[data-testid=last-paid]")).to_contain_text("sats earned")

    # The core dies with a question on screen: the page says it is reconnecting and the
    # question leaves; the core comes back and hands the task out again, and the label arrives.
    after = customer.submit(
        "image_classification", "https://example.com/img/after.png", ["bird", "cat", "dog"]
    )
    question = page.locator("#question")
    expect(page.locator("[data-testid=task-id]")).to_have_text(after, timeout=30_000)
    stack.kill("core")
    expect(connection).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    expect(connection).to_have_text("Reconnecting…")
    expect(question).to_be_hidden()
    expect(page.locator("[data-testid=waiting]")).to_contain_text("Reconnecting to the core")
    expect(page.locator("[data-testid=last-event]")).to_contain_text(f"Task {after} was withdrawn")
    stack.start_core()
    stack.wait_ready()
    expect(connection).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(question).to_be_visible(timeout=60_000)  # after the lost stream's lease, at the latest
    expect(page.locator("[data-testid=task-id]")).to_have_text(after)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert fits(page)
    tab_to_first_option(page)
    page.keyboard.press("Enter")  # the focused button: "bird", with the keyboard alone
    expect(page.locator("[data-testid=labels-done]")).to_have_text("3", timeout=30_000)
    assert wait_for(f"{after} settled", lambda: customer.settled(after))["consensus_label"] == "bird"
    assert page.errors == []
