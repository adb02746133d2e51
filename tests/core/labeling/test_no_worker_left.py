"""A task no registered worker can label any more is closed, not left open for ever
(docs/labeling.md, "When no worker is left"): the real core over gRPC, scripted agents, SQLite.
The dispatcher reads the roster every 0.05 s here (ASG_WORKER_ROSTER_SECONDS)."""

from __future__ import annotations

import asyncio

import pytest

from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, common_pb2
from tests.core.labeling.conftest import Agent, CoreHarness
from tests.core.labeling.test_adaptive_dispatch import Crowd, honest

pytestmark = [pytest.mark.asyncio, pytest.mark.core_settings(worker_roster_seconds=0.05, rate_limit=False)]

SETTLE = 0.5  # ten roster periods


async def test_majority_task_fails_once_every_worker_labeled_it_without_a_majority(
    harness: CoreHarness,
) -> None:
    a, b = await harness.agent(), await harness.agent()
    task_id = await harness.submit(threshold=3)  # needs 3 labels; only 2 workers exist
    for agent, option in ((a, "cat"), (b, "dog")):
        [assignment] = await agent.assignments(1)
        await agent.label(assignment.task_id, option)
    result = await harness.wait_decided(task_id)
    assert result.status == common_pb2.TASK_STATUS_FAILED
    assert (result.failure_reason, result.worker_count, result.consensus_label) == ("no_consensus", 2, "")


async def test_a_task_every_worker_skipped_fails(harness: CoreHarness) -> None:
    a = await harness.agent()
    task_id = await harness.submit(threshold=2)
    [assignment] = await a.assignments(1)
    await a.skip(assignment.task_id)
    result = await harness.wait_decided(task_id)
    assert (result.status, result.failure_reason, result.worker_count) == (
        common_pb2.TASK_STATUS_FAILED,
        "no_consensus",
        0,
    )


async def test_a_registered_worker_offline_keeps_the_task_open_until_it_comes(harness: CoreHarness) -> None:
    a, b = await harness.agent(), await harness.agent()
    later = await harness.register_worker()  # registered, not connected
    task_id = await harness.submit(threshold=3)
    for agent in (a, b):
        [assignment] = await agent.assignments(1)
        await agent.label(assignment.task_id, "cat")
    await asyncio.sleep(SETTLE)
    assert (await harness.result(task_id)).status == common_pb2.TASK_STATUS_IN_PROGRESS

    c = Agent(harness.labeling, later)
    await c.hello(1)
    harness.agents.append(c)
    [assignment] = await c.assignments(1)
    await c.label(assignment.task_id, "cat")
    result = await harness.wait_decided(task_id)
    assert (result.status, result.consensus_label, result.worker_count) == (
        common_pb2.TASK_STATUS_VERIFIED,
        "cat",
        3,
    )


async def test_a_task_nobody_has_seen_waits_for_workers(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2, task_type="sentiment")  # no worker of that type
    await asyncio.sleep(SETTLE)
    assert (await harness.result(task_id)).status == common_pb2.TASK_STATUS_PENDING


async def test_adaptive_task_is_decided_below_target_when_the_workers_run_out(harness: CoreHarness) -> None:
    """Two unknown workers agreeing are not 95 % sure (the engine would buy more), but there is
    nobody else: the leading option, at the engine's lower confidence."""
    crowd = Crowd(harness)
    try:
        for _ in range(2):
            await crowd.join(honest)
        task_id = await crowd.submit("dog", threshold=2, max_labels=10)
        [result] = await crowd.decided([task_id])
    finally:
        await crowd.stop()
    assert result.status == common_pb2.TASK_STATUS_VERIFIED
    assert (result.consensus_label, result.worker_count, result.agreement_count) == ("dog", 2, 2)
    assert 0.5 < result.confidence < 0.95


# `labor: challenge` (docs/labeling.md, "When no worker is left"; dispatch/labor.py): only
# challenge gateways count, and a task too few of them could ever decide is closed at once.


async def gateway(harness: CoreHarness, max_in_flight: int = 1) -> Agent:
    agent = Agent(harness.labeling, await harness.register_worker(challenge_gateway=True))
    await agent.hello(max_in_flight)
    harness.agents.append(agent)
    return agent


async def charged(harness: CoreHarness) -> tuple[int, int, int]:
    """The month's (tasks charged, tasks failed, sats charged) of the harness's customer."""
    usage = await billing_pb2_grpc.BillingServiceStub(harness.channel).GetUsage(
        billing_pb2.GetUsageRequest(), metadata=harness.auth
    )
    return usage.total.tasks_charged, usage.total.tasks_failed, usage.total.sats_charged


async def failed_uncharged(harness: CoreHarness, task_id: str, labels: int, plain: Agent) -> None:
    """The task failed for want of challenge gateways with `labels` labels, was not charged,
    and the plain worker of its type was never offered it."""
    result = await harness.wait_decided(task_id)
    assert (result.status, result.failure_reason, result.worker_count) == (
        common_pb2.TASK_STATUS_FAILED,
        "no_challenge_gateway",
        labels,
    )
    assert await plain.held_after(0.1) == 0
    assert await charged(harness) == (0, 1, 0)


async def test_a_challenge_task_with_no_gateway_registered_fails_uncharged_not_waiting_for_ever(
    harness: CoreHarness,
) -> None:
    """Plain workers of its type can never label it: before, they kept it open for ever."""
    plain = await harness.agent(2)
    task_id = await harness.submit(threshold=2, labor="challenge")
    await failed_uncharged(harness, task_id, 0, plain)


@pytest.mark.core_settings(worker_roster_seconds=0.5, rate_limit=False)
async def test_one_gateway_holding_a_task_that_needs_two_is_told_to_stop_and_the_task_fails(
    harness: CoreHarness,
) -> None:
    """Its consensus alone can never reach a threshold of 2: the core does not let its
    visitors label a task bound to fail; the gateway hears WITHDRAWN and the task fails."""
    one = await gateway(harness)
    task_id = await harness.submit(threshold=2, labor="challenge")
    [assignment] = await one.assignments(1)  # offered before the first roster read (0.5 s)
    assert assignment.task_id == task_id
    await one.read_until(lambda a: bool(a.errors))
    assert [(e.task_id, e.code) for e in one.errors] == [(task_id, "withdrawn")]
    result = await harness.wait_decided(task_id)
    assert (result.status, result.failure_reason) == (common_pb2.TASK_STATUS_FAILED, "no_challenge_gateway")
    # A label sent after the close is refused, not counted.
    await one.label(task_id, "cat")
    await one.read_until(lambda a: len(a.errors) == 2)
    assert (await harness.result(task_id)).worker_count == 0


async def test_a_challenge_task_every_gateway_saw_fails_though_plain_workers_remain(
    harness: CoreHarness,
) -> None:
    """Two gateways, threshold 2: one labels, the other skips; the plain worker of the type
    (never offered it) no longer keeps it open."""
    plain = await harness.agent()
    a, b = await gateway(harness), await gateway(harness)
    task_id = await harness.submit(threshold=2, labor="challenge")
    [offered_a], [offered_b] = await a.assignments(1), await b.assignments(1)
    await a.label(offered_a.task_id, "cat")
    await b.skip(offered_b.task_id)
    await failed_uncharged(harness, task_id, 1, plain)


async def test_two_gateways_still_decide_a_challenge_task(harness: CoreHarness) -> None:
    """Enough gateways: the sweep leaves the task alone and their labels decide it."""
    a, b = await gateway(harness), await gateway(harness)
    task_id = await harness.submit(threshold=2, labor="challenge")
    await asyncio.sleep(SETTLE)  # ten sweeps while both hold it
    for agent in (a, b):
        [assignment] = await agent.assignments(1)
        await agent.label(assignment.task_id, "cat")
    result = await harness.wait_decided(task_id)
    assert (result.status, result.consensus_label, result.worker_count) == (
        common_pb2.TASK_STATUS_VERIFIED,
        "cat",
        2,
    )
