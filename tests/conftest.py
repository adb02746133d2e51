"""Shared fixtures: the real stack (core + gateway processes on free ports), customers.

Tests live by the package they exercise (`core/`, `store/`, `gateway/`, `sdk/`,
`worker_agent/`) or, when they drive several processes as a user would, in `e2e/`. Each folder's
own conftest holds what only it needs. Every test is marked with its kind (`-m e2e`,
`-m "not e2e"`), taken from its folder here rather than repeated in each file.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack, free_addr
from asg_grpc.ledger.wallet import Wallet, load_wallet
from asg_grpc.store.sqlite import SQLiteStore

TESTS = Path(__file__).parent
KINDS = ("core", "store", "gateway", "sdk", "worker_agent", "e2e", "browser", "challenge")  # one marker each


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = item.path.relative_to(TESTS).parts[0]
        if kind in KINDS:
            item.add_marker(kind)


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`asg dev` records its stack under $XDG_STATE_HOME (docs/cli.md): the tests' own, never
    the record of the person running them."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield Path(os.environ["XDG_STATE_HOME"])
    if before is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite store of its own, in-process (store-level tests)."""
    s = SQLiteStore(tmp_path / "asg.sqlite3")
    yield s
    s.close()


@pytest.fixture
def wallet(tmp_path: Path) -> Wallet:
    """A platform wallet, its key generated into the test's dir."""
    return load_wallet(None, tmp_path / "wallet.wif")


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def until_serving(core: subprocess.Popen) -> tuple[list[str], str]:
    """A core started with stderr=PIPE, text=True: its log lines up to "core serving", then
    stopped; the lines and what it wrote after."""
    lines: list[str] = []
    try:
        assert core.stderr is not None
        for line in core.stderr:
            lines.append(line)
            if "core serving" in line:
                break
    finally:
        core.terminate()
        rest = core.communicate(timeout=30)[1]
    return lines, rest


def make_stack(tmp: Path, **env: str) -> Stack:
    """A stack on free ports. The per-key rate limit is off unless `env` turns it on: most
    tests call from one key faster than the sandbox tier allows (tests/gateway/test_rate_limits.py)."""
    return Stack(
        http_addr=free_addr(),
        grpc_addr=free_addr(),
        data_dir=tmp / "data",
        log_dir=tmp / "logs",
        env={"ASG_RATE_LIMIT": "off", **env},
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the whole session; tests isolate themselves by registering customers."""
    with make_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, for tests that kill or restart processes."""
    with make_stack(tmp_path) as s:
        yield s


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=10.0) as client:
        yield client


def register(base_url: str, name: str = "Test") -> dict:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    reply = httpx.post(f"{base_url}/v1/customers", json={"name": name, "email": email}, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


@pytest.fixture
def customer(stack: Stack) -> dict:
    """The 201 body of a freshly registered customer (unique email)."""
    return register(stack.base_url)


@pytest.fixture
def auth(customer: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer['api_key']}"}


def register_webhook(
    base_url: str, api_key: str, callback_url: str, secret: str = "whsec_test_secret"
) -> dict:
    """Register a webhook through the REST API (a task's callback_url must name one)."""
    reply = httpx.post(
        f"{base_url}/v1/webhooks",
        json={"callback_url": callback_url, "secret": secret},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, launched as tests/browser/ does (executable_path,
    --no-sandbox); skipped, saying why, when the playwright package or the browser is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()
