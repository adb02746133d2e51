"""Helpers for the worker agent's tests: agents in-process or as real `asg-worker` processes."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from fake_core import TOKEN

from asg_grpc.server import Core
from tests.core.labeling.conftest import CoreHarness
from tests.core.labeling.conftest import settings_for as core_settings
from worker_agent.agent import Agent
from worker_agent.labelers import create
from worker_agent.settings import WorkerSettings

ASG_WORKER = str(Path(sys.executable).parent / "asg-worker")


def settings_for(port: int, **changes: Any) -> WorkerSettings:
    base = WorkerSettings(server=f"127.0.0.1:{port}", token=TOKEN, labeler="simulated", progress=0)
    return base.with_overrides(**changes).validate()


@asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    """Run `agent` in this loop; on exit ask it to stop and wait for its drain."""
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 15)


async def eventually(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for a condition on the agent's side, which has no event to wait on."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def agent_for(port: int, **changes: Any) -> Agent:
    settings = settings_for(port, **changes)
    return Agent(settings, create(settings), rand=lambda: 0.0)


def worker_env(port: int, **extra: str) -> dict[str, str]:
    """Environment for an `asg-worker` process: the token travels in env, as the docs advise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASG_WORKER_")}
    env.update(
        ASG_WORKER_SERVER=f"127.0.0.1:{port}",
        ASG_WORKER_TOKEN=TOKEN,
        ASG_WORKER_PROGRESS="0",
        ASG_LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def worker_bin() -> str:
    if not Path(ASG_WORKER).exists():
        pytest.fail("asg-worker is not installed: run `.venv/bin/pip install -e '.[dev]'`")
    return ASG_WORKER


@dataclass
class TextSite:
    """A local HTTPS server with a self-signed certificate, serving the texts tasks point at."""

    base_url: str
    cert: Path

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


PAGES: dict[str, bytes] = {
    "/review.txt": "I loved this phone.\nThe battery lasts two days — really.\n".encode(),
    "/escape.txt": b"before\x1b[2Jafter\n",
    "/big.txt": b"a" * 100_000,
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="session")
def text_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextSite]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TextSite(f"https://127.0.0.1:{server.server_address[1]}", cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest_asyncio.fixture
async def core(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    """The real core (the harness of tests/core/labeling) on a free loopback port."""
    core = Core(core_settings(tmp_path))
    await core.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{core.port}")
    try:
        yield CoreHarness(core, channel)
    finally:
        await channel.close()
        await core.stop()
