"""`asg-worker` as a real process: reconnect after a core restart, SIGTERM drain, exit codes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import eventually, worker_env
from fake_core import FakeLabeling, assignment, serving, start


async def spawn(worker_bin: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would block the agent
        return await asyncio.create_subprocess_exec(
            worker_bin, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink, env=env
        )


async def exit_code(proc: asyncio.subprocess.Process) -> int:
    return await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.asyncio
async def test_reconnects_after_the_core_restarts_on_the_same_port(worker_bin: str, tmp_path: Path) -> None:
    first = FakeLabeling([assignment(n) for n in range(3)])
    server, port = await start(first)
    log = tmp_path / "worker.log"
    proc = await spawn(worker_bin, worker_env(port, ASG_WORKER_LABELER="simulated"), log)
    try:
        await first.wait_for(lambda: len(first.labels) == 3)
        await server.stop(0)  # the core goes away with the stream open
        second = FakeLabeling([assignment(n) for n in range(10, 13)])
        async with serving(second, port):
            await second.wait_for(lambda: len(second.labels) == 3, timeout=15)
            assert second.hellos, "the agent says hello again on the new stream"
            proc.send_signal(signal.SIGTERM)
            assert await exit_code(proc) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "stream lost; reconnecting" in log.read_text()


@pytest.mark.asyncio
async def test_sigterm_sends_drain_finishes_held_work_and_exits_0(worker_bin: str, tmp_path: Path) -> None:
    core = FakeLabeling([assignment(n) for n in range(10)])
    log = tmp_path / "worker.log"
    env = dict(ASG_WORKER_LABELER="simulated", ASG_WORKER_MAX_IN_FLIGHT="4", ASG_WORKER_DELAY="1")
    async with serving(core) as port:
        proc = await spawn(worker_bin, worker_env(port, **env), log)
        # The agent logs each assignment it takes (DEBUG): once all four are held, stop it.
        await eventually(lambda: log.read_text().count('"msg":"assignment"') == 4)
        proc.send_signal(signal.SIGTERM)
        assert await exit_code(proc) == 0
    kinds = core.kinds()
    assert "drain" in kinds and kinds.index("drain") < kinds.index("labels")
    assert len(core.assigned) == 4, "nothing is assigned after Drain"
    assert sorted(core.labels) == sorted(core.assigned)
    assert core.skips == {}
    assert '"msg":"stopped"' in log.read_text()


@pytest.mark.asyncio
async def test_a_second_signal_during_the_drain_exits_1_at_once(worker_bin: str, tmp_path: Path) -> None:
    core = FakeLabeling([assignment(1)])
    log = tmp_path / "worker.log"
    env = dict(ASG_WORKER_LABELER="simulated", ASG_WORKER_DELAY="60", ASG_WORKER_DRAIN_TIMEOUT="60")
    async with serving(core) as port:
        proc = await spawn(worker_bin, worker_env(port, **env), log)
        await eventually(lambda: '"msg":"assignment"' in log.read_text())
        proc.send_signal(signal.SIGINT)
        await eventually(lambda: '"msg":"draining"' in log.read_text())
        proc.send_signal(signal.SIGINT)
        assert await exit_code(proc) == 1
    assert "exiting without draining" in log.read_text()


@pytest.mark.asyncio
async def test_sigterm_while_the_core_is_down_exits_0(worker_bin: str, tmp_path: Path) -> None:
    core = FakeLabeling()
    server, port = await start(core)
    await server.stop(0)  # a free port nobody listens on
    log = tmp_path / "worker.log"
    proc = await spawn(worker_bin, worker_env(port, ASG_WORKER_LABELER="simulated"), log)
    await eventually(lambda: "stream lost; reconnecting" in log.read_text())
    proc.send_signal(signal.SIGTERM)
    assert await exit_code(proc) == 0


@pytest.mark.asyncio
async def test_unauthenticated_exits_2_without_retrying(worker_bin: str, tmp_path: Path) -> None:
    core = FakeLabeling(token="wk_a_different_token")
    log = tmp_path / "worker.log"
    async with serving(core) as port:
        proc = await spawn(worker_bin, worker_env(port, ASG_WORKER_LABELER="simulated"), log)
        assert await exit_code(proc) == 2
    text = log.read_text()
    assert core.calls == 1, text
    assert "UNAUTHENTICATED" in text and "AuthError" in text


def test_missing_token_is_a_config_error_naming_the_variable(worker_bin: str) -> None:
    env = worker_env(1, ASG_WORKER_LABELER="simulated")
    del env["ASG_WORKER_TOKEN"]
    done = subprocess.run([worker_bin], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2
    assert "ASG_WORKER_TOKEN" in done.stderr and "--token" in done.stderr
