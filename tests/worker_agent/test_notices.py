"""The agent against the real in-process core: a WorkNotice (why the core holds work back:
banned, capped) becomes one WARNING log line and a count in the progress line."""

from __future__ import annotations

import logging

import pytest
from conftest import agent_for, eventually, running

from asg_grpc.dispatch.outbox import Notice
from tests.core.labeling.conftest import CoreHarness


@pytest.mark.asyncio
async def test_agent_logs_why_the_core_holds_work_back(
    core: CoreHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    agent = agent_for(core.core.port, token=await core.register_worker(), progress=0.02)
    dispatcher = core.core.dispatcher
    assert dispatcher is not None
    async with running(agent):
        await eventually(lambda: agent.stats.worker_id)
        # The stream's outbox, as the dispatcher's hold-back path fills it (dispatcher._offerable).
        [session] = [s for s in dispatcher._sessions if s.worker_id == agent.stats.worker_id]
        session.outbox.notice(Notice("banned", "your answers fell below the quality floor", ("cat", "dog")))
        await eventually(lambda: agent.stats.notices == 1)
        await eventually(
            lambda: any(vars(r).get("notices") == 1 for r in caplog.records if r.getMessage() == "progress")
        )
    [line] = [r for r in caplog.records if r.getMessage() == "the core holds work back"]
    assert line.levelno == logging.WARNING
    assert (vars(line)["code"], vars(line)["family_options"]) == ("banned", ["cat", "dog"])
    assert "quality floor" in vars(line)["detail"]
