"""The agent against the real in-process core: a payment notice becomes a log line and a total."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import agent_for, eventually, running, worker_env
from fake_core import assignment

from asg_grpc.dispatch.dispatcher import Dispatcher
from asg_grpc.dispatch.payments import WorkerPayment
from tests.core.labeling.conftest import CoreHarness
from worker_agent.labelers import Answer, InteractiveLabeler

TXID = hashlib.sha256(b"payout").hexdigest()
OTHER_TXID = hashlib.sha256(b"payout 2").hexdigest()


def paid(worker_id: str, txid: str = TXID, vout: int = 1, sats: int = 600, tasks: int = 2) -> WorkerPayment:
    task_ids = tuple(f"tsk_{txid[:6]}_{i}" for i in range(tasks))
    return WorkerPayment(worker_id, txid, vout, sats, task_ids, settled_at=1_795_371_497.0)


def dispatcher(core: CoreHarness) -> Dispatcher:
    assert core.core.dispatcher is not None
    return core.core.dispatcher


@pytest.mark.asyncio
async def test_agent_logs_each_payment_once_and_keeps_the_total(
    core: CoreHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    agent = agent_for(core.core.port, token=await core.register_worker(), progress=0.02)
    async with running(agent):
        await eventually(lambda: agent.stats.worker_id)
        worker_id = agent.stats.worker_id
        notices = [paid(worker_id), paid(worker_id, OTHER_TXID, vout=0, sats=900, tasks=1)]
        assert dispatcher(core).notify_payments(notices) == 1 + 1
        await eventually(lambda: agent.stats.sats_earned == 1500)
        # The same notice again, then the same output paying other tasks (a new payment): once
        # that is counted, the repeat was seen.
        later = WorkerPayment(worker_id, TXID, 1, 100, ("tsk_other",), settled_at=1_795_371_498.0)
        assert dispatcher(core).notify_payments([notices[0], later]) == 2
        await eventually(lambda: agent.stats.sats_earned == 1600)
        await eventually(
            lambda: any(
                vars(r).get("sats_earned") == 1600 for r in caplog.records if r.getMessage() == "progress"
            )
        )
    lines = [vars(r) for r in caplog.records if r.getMessage() == "paid"]
    assert [(line["outpoint"], line["sats"], line["tasks"]) for line in lines] == [
        (f"{TXID}:1", 600, 2),
        (f"{OTHER_TXID}:0", 900, 1),
        (f"{TXID}:1", 100, 1),
    ], "each payment once, with its outpoint, sats and task count"
    assert [line["sats_earned"] for line in lines] == [600, 1500, 1600]
    assert agent.stats.payments == 3 and agent.stats.sats_earned == 1600
    stopped = next(vars(r) for r in caplog.records if r.getMessage() == "stopped")
    assert stopped["sats_earned"] == 1600 and stopped["payments"] == 3


@pytest.mark.asyncio
async def test_asg_worker_process_logs_the_payment_line(
    core: CoreHarness, worker_bin: str, tmp_path: Path
) -> None:
    env = worker_env(
        core.core.port, ASG_WORKER_LABELER="simulated", ASG_WORKER_TOKEN=await core.register_worker()
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            worker_bin, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink, env=env
        )

    def logged(msg: str) -> list[dict[str, object]]:
        entries = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
        return [entry for entry in entries if entry["msg"] == msg]

    try:
        await eventually(lambda: logged("connected"), timeout=20)
        worker_id = str(logged("connected")[0]["worker_id"])
        assert dispatcher(core).notify_payments([paid(worker_id, sats=600, tasks=2)]) == 1
        await eventually(lambda: logged("paid"))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    [line] = logged("paid")
    assert line["outpoint"] == f"{TXID}:1" and line["sats"] == 600 and line["tasks"] == 2
    assert logged("stopped")[0]["sats_earned"] == 600


@pytest.mark.asyncio
async def test_the_interactive_labeler_shows_the_payment_and_asks_again() -> None:
    read, write = os.pipe()
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=read, out=out)
    try:
        labeler.paid("paid 300 sats · abc:0 · 1 task · 300 sats earned")  # between tasks
        answer = asyncio.create_task(labeler.label(assignment(1)))
        await eventually(lambda: "Answer 1-2" in out.getvalue())
        labeler.paid("paid 600 sats · abc:1 · 2 tasks · 900 sats earned")  # while a question waits
        os.write(write, b"1\n")
        assert await asyncio.wait_for(answer, 10) == Answer("cat")
    finally:
        await labeler.aclose()
        os.close(read)
        os.close(write)
    screen = out.getvalue()
    assert screen.startswith("paid 300 sats · abc:0 · 1 task · 300 sats earned\n")
    assert (
        "or s to skip: \npaid 600 sats · abc:1 · 2 tasks · 900 sats earned\nAnswer 1-2, or s to skip: "
        in screen
    )
