"""The agent in-process against the fake core: handshake, batched labels, acks, refusals, drain."""

from __future__ import annotations

import logging

import grpc
import pytest
from conftest import TextSite, agent_for, eventually, running
from fake_core import FakeLabeling, assignment, serving, start

from worker_agent import AGENT
from worker_agent.errors import AuthError
from worker_agent.stats import Progress, Stats


@pytest.mark.asyncio
async def test_hello_welcome_then_batched_labels_for_every_assignment() -> None:
    core = FakeLabeling([assignment(n) for n in range(40)])
    async with serving(core) as port:
        agent = agent_for(port, max_in_flight=32)
        async with running(agent):
            await core.wait_for(lambda: len(core.labels) == 40)
            await eventually(lambda: agent.stats.labels_acked == 40)
    assert core.kinds()[0] == "hello"
    hello = core.hellos[0]
    assert hello.max_in_flight == 32 and hello.agent == AGENT and list(hello.task_types) == []
    batches = [len(m.items) for m in core.label_messages()]
    assert sum(batches) == 40
    assert max(batches) > 1, f"labels were sent one per message: {batches}"
    assert len(batches) < 40
    assert set(core.labels.values()) <= {"cat", "dog"}


@pytest.mark.asyncio
async def test_task_types_narrow_the_hello() -> None:
    core = FakeLabeling()
    async with serving(core) as port, running(agent_for(port, task_types=("sentiment", "moderation"))):
        await core.wait_for(lambda: core.hellos)
    assert list(core.hellos[0].task_types) == ["sentiment", "moderation"]


@pytest.mark.asyncio
async def test_acks_are_counted_in_the_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    core = FakeLabeling([assignment(n) for n in range(5)])
    caplog.set_level(logging.INFO, logger="worker_agent.progress")

    def lines() -> list[dict[str, object]]:
        return [vars(r) for r in caplog.records if r.getMessage() == "progress"]

    async with serving(core) as port:
        agent = agent_for(port, max_in_flight=2, progress=0.02)
        async with running(agent):
            await eventually(lambda: any(line["labels_acked"] == 5 for line in lines()))
    line = next(line for line in lines() if line["labels_acked"] == 5)
    assert line["labels_sent"] == 5 and line["errors"] == 0 and line["skips"] == 0
    assert line["connected"] is True
    assert any(float(str(line["rate_per_s"])) > 0 for line in lines())


def test_progress_rate_is_acks_per_second_since_the_last_line() -> None:
    progress = Progress(Stats())
    progress.fields(now=100.0)
    progress.stats.labels_acked = 30
    assert progress.fields(now=110.0)["rate_per_s"] == 3.0
    assert progress.fields(now=120.0)["rate_per_s"] == 0.0


@pytest.mark.asyncio
async def test_work_error_is_counted_and_the_stream_stays_open() -> None:
    core = FakeLabeling([assignment(n) for n in range(4)], refuse={"tsk_1": "invalid_option"})
    async with serving(core) as port:
        agent = agent_for(port, max_in_flight=1)
        async with running(agent):
            await eventually(lambda: agent.stats.labels_acked == 3 and agent.stats.errors == 1)
            assert core.open_streams == 1
    assert core.calls == 1, "a refused label must not cost a reconnect"
    assert sorted(core.labels) == ["tsk_0", "tsk_2", "tsk_3"]


@pytest.mark.asyncio
async def test_always_answers_that_option_and_skips_tasks_without_it() -> None:
    tasks = [assignment(1), assignment(2, options=("red", "blue")), assignment(3)]
    core = FakeLabeling(tasks)
    async with serving(core) as port, running(agent_for(port, always="dog")):
        await core.wait_for(lambda: len(core.labels) + len(core.skips) == 3)
    assert core.labels == {"tsk_1": "dog", "tsk_3": "dog"}
    assert core.skips == {"tsk_2": "option not offered"}


@pytest.mark.asyncio
async def test_drain_sends_drain_and_finishes_held_work() -> None:
    core = FakeLabeling([assignment(n) for n in range(10)])
    async with serving(core) as port:
        agent = agent_for(port, max_in_flight=4, delay=0.5)
        async with running(agent) as run:
            await eventually(lambda: agent.stats.held == 4)
            agent.request_stop()
            await run
        kinds = core.kinds()
    assert "drain" in kinds
    assert kinds.index("drain") < kinds.index("labels"), "Drain goes out before the held work's labels"
    assert sorted(core.labels) == sorted(core.assigned), "held work is finished, not dropped"
    assert len(core.assigned) == 4, "nothing is assigned after Drain"
    assert agent.stats.labels_acked == 4
    assert core.open_streams == 0


@pytest.mark.asyncio
async def test_unauthenticated_raises_without_retrying() -> None:
    core = FakeLabeling(token="wk_the_right_one")
    async with serving(core) as port:
        with pytest.raises(AuthError, match="UNAUTHENTICATED"):
            await agent_for(port).run()
    assert core.calls == 1


@pytest.mark.asyncio
async def test_a_task_whose_lease_the_core_took_back_is_not_answered() -> None:
    core = FakeLabeling([assignment(1)])
    async with serving(core) as port:
        agent = agent_for(port, max_in_flight=1, delay=30)
        async with running(agent):
            await eventually(lambda: agent.stats.held == 1)
            core.expire("tsk_1")
            await eventually(lambda: agent.stats.held == 0 and agent.stats.errors == 1)
    assert core.labels == {} and core.skips == {}, "the labeler's answer was withdrawn, not sent"


@pytest.mark.asyncio
async def test_labels_unacked_when_the_stream_breaks_are_forgotten() -> None:
    core = FakeLabeling([assignment(n) for n in range(3)])
    core.ack = False
    server, port = await start(core)
    agent = agent_for(port, drain_timeout=0.2)
    async with running(agent):
        await core.wait_for(lambda: len(core.labels) == 3)
        await server.stop(0)
        again = FakeLabeling()
        async with serving(again, port):
            await again.wait_for(lambda: again.hellos)
            await eventually(lambda: agent.stats.connected)
            assert agent.stats.labels_acked == 0 and agent.stats.reconnects >= 1
    assert agent.stats.labels_sent == 3


@pytest.mark.asyncio
async def test_tls_with_a_private_root(text_site: TextSite) -> None:
    key = text_site.cert.with_name("key.pem").read_bytes()
    credentials = grpc.ssl_server_credentials([(key, text_site.cert.read_bytes())])
    core = FakeLabeling([assignment(1)])
    server, port = await start(core, credentials=credentials)
    try:
        agent = agent_for(port, tls=True, ca_file=text_site.cert)
        async with running(agent):
            await eventually(lambda: agent.stats.labels_acked == 1)
    finally:
        await server.stop(0)
