"""The web labeler's page server over real loopback HTTP: answers, skips, hand-backs, and refusals.

The browser side (buttons, keys, the reconnecting state against a real core) is
tests/browser/test_web_labeler.py; these pin what the page's API promises."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from conftest import worker_env
from fake_core import assignment

from worker_agent.labelers import Answer, Skip, WebLabeler
from worker_agent.labelers.interactive import IDLE
from worker_agent.stats import Stats

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def web() -> AsyncIterator[tuple[WebLabeler, httpx.AsyncClient]]:
    labeler = WebLabeler(port=0, answer_timeout=0)
    url = await labeler.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield labeler, client
    await labeler.aclose()


async def question(client: httpx.AsyncClient, since: str = "") -> tuple[str, dict[str, Any]]:
    """The next state with a question on it (long-polls, as the page does)."""
    for _ in range(50):
        got = (await client.get("/api/state", params={"since": since})).json()
        since = got["etag"]
        if got["state"]["question"] is not None:
            return since, got["state"]["question"]
    raise AssertionError("no question appeared")


async def test_an_answer_on_the_page_is_the_decision_and_counts_show(
    web: tuple[WebLabeler, httpx.AsyncClient],
) -> None:
    labeler, client = web
    stats = Stats(labels_acked=4, sats_earned=1200, connected=True, worker_id="wkr_1")
    labeler.attach(stats)
    deciding = asyncio.create_task(labeler.label(assignment(1, options=["cat", "dog", "bird"])))
    _, q = await question(client)
    assert (q["task_id"], q["options"], q["kind"]) == ("tsk_1", ["cat", "dog", "bird"], "image")
    assert q["image_url"] == "https://cdn.example.com/1.jpg"
    reply = await client.post("/api/answer", json={"question_id": q["id"], "option": "bird"})
    assert reply.status_code == 200, reply.text
    assert await deciding == Answer("bird")
    state = (await client.get("/api/state")).json()["state"]
    assert state["question"] is None
    assert (state["connection"], state["labels_done"], state["sats_earned"]) == ("connected", 4, 1200)
    assert "tsk_1" in state["last_event"]


async def test_skip_stale_answers_and_bad_options_are_told_apart(
    web: tuple[WebLabeler, httpx.AsyncClient],
) -> None:
    labeler, client = web
    deciding = asyncio.create_task(labeler.label(assignment(2)))
    _, q = await question(client)
    bad = await client.post("/api/answer", json={"question_id": q["id"], "option": "horse"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("option:")
    missing = await client.post("/api/answer", json={"option": "cat"})
    assert missing.status_code == 400 and missing.json()["error"].startswith("question_id:")
    assert (await client.post("/api/skip", json={"question_id": q["id"]})).status_code == 200
    assert await deciding == Skip("skipped by labeler")
    late = await client.post("/api/answer", json={"question_id": q["id"], "option": "cat"})
    assert late.status_code == 409  # the question is gone: a late click cannot answer the next one


async def test_a_question_nobody_answers_is_handed_back() -> None:
    labeler = WebLabeler(port=0, answer_timeout=0.3)
    await labeler.start()
    try:
        assert await labeler.label(assignment(3)) == Skip(IDLE)
        assert labeler.snapshot()["handed_back"] == 1
    finally:
        await labeler.aclose()


async def test_a_withdrawn_question_leaves_the_page_and_the_stream_state_shows(
    web: tuple[WebLabeler, httpx.AsyncClient],
) -> None:
    labeler, client = web
    stats = Stats(connected=True, worker_id="wkr_1")
    labeler.attach(stats)
    deciding = asyncio.create_task(labeler.label(assignment(4)))
    etag, _ = await question(client)
    stats.connected = False  # the session ends: it cancels what the labeler holds
    deciding.cancel()
    got = (await client.get("/api/state", params={"since": etag})).json()["state"]
    assert got["question"] is None
    assert got["connection"] == "reconnecting"
    assert "withdrawn" in got["last_event"]


async def test_other_hosts_and_foreign_origins_are_refused(web: tuple[WebLabeler, httpx.AsyncClient]) -> None:
    labeler, client = web
    deciding = asyncio.create_task(labeler.label(assignment(5)))
    _, q = await question(client)
    rebound = await client.get("/api/state", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 421
    foreign = await client.post(
        "/api/answer",
        json={"question_id": q["id"], "option": "cat"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    form = await client.post("/api/answer", content=b"question_id=1&option=cat")
    assert form.status_code == 415  # a cross-site form post cannot be JSON without a preflight
    assert not deciding.done()
    deciding.cancel()
    page = await client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_a_taken_port_is_a_configuration_error(worker_bin: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.to_thread(
            subprocess.run,
            [worker_bin, "--labeler", "web", "--web-port", str(port)],
            env=worker_env(1),
            capture_output=True,
            timeout=30,
        )
    assert proc.returncode == 2, proc.stderr
    assert b"--web-port / ASG_WORKER_WEB_PORT" in proc.stderr
