"""Who gets which share of the work, through the real core (dispatch/traffic.py, docs/quality.md
"Gold share and traffic caps"): gold is served so it is about `gold_share` of each worker's
labels, and one worker may not give more than its capped share of one customer's labels (its
agent is told why it gets no more)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, common_pb2, tasks_pb2
from tests.core.labeling.conftest import Agent, CoreHarness

pytestmark = pytest.mark.asyncio


async def submit(harness: CoreHarness, *, gold: str | None = None, threshold: int = 10, auth=None) -> str:
    """A majority task no lone worker can decide (it needs `threshold` labels)."""
    reply = await harness.tasks.SubmitTask(
        tasks_pb2.SubmitTaskRequest(
            task=tasks_pb2.TaskInput(
                type="image_classification",
                data_url=f"https://example.com/{uuid.uuid4().hex}.jpg",
                label_spec=common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"]),
                consensus_threshold=threshold,
                gold_label=gold,
            )
        ),
        metadata=auth or harness.auth,
    )
    return reply.task.task_id


async def work(agent: Agent, count: int) -> list[str]:
    """Label the next `count` tasks offered (one at a time), in the order offered."""
    done = len(agent.assigned)
    for n in range(done, done + count):
        [*_, assignment] = await agent.assignments(n + 1)
        await agent.label(assignment.task_id, "cat")
    return [a.task_id for a in agent.assigned[done : done + count]]


async def other_customer(harness: CoreHarness) -> list[tuple[str, str]]:
    reply = await billing_pb2_grpc.BillingServiceStub(harness.channel).RegisterCustomer(
        billing_pb2.RegisterCustomerRequest(name="Other", email=f"{uuid.uuid4().hex[:8]}@example.com")
    )
    return [("authorization", f"Bearer {reply.api_key}")]


@pytest.mark.core_settings(gold_share=0.2, rate_limit=False)
async def test_gold_is_about_its_share_of_a_workers_labels(harness: CoreHarness) -> None:
    plain = [await submit(harness) for _ in range(40)]
    # Submitted last: oldest first alone would serve them after every plain task.
    gold = {await submit(harness, gold="cat") for _ in range(20)}
    agent = await harness.agent()

    first = await work(agent, 30)

    served = sum(task_id in gold for task_id in first)
    assert 5 <= served <= 7, served  # 20 % of 30 labels
    assert set(first) <= gold | set(plain)


@pytest.mark.core_settings(rate_limit=False)
async def test_gold_still_finds_a_worker_when_nothing_else_is_open(harness: CoreHarness) -> None:
    plain = [await submit(harness) for _ in range(5)]
    gold = [await submit(harness, gold="dog") for _ in range(5)]  # the default 5 % share
    agent = await harness.agent()

    labeled = await work(agent, 10)

    assert set(labeled) == {*plain, *gold}
    assert set(labeled[-4:]) <= set(gold)  # after the plain ones, bar the first label's gold
    assert await agent.held_after() == 10


@pytest.mark.core_settings(customer_share_cap=0.5, customer_share_min_labels=10, rate_limit=False)
async def test_a_worker_over_its_share_of_a_customer_gets_none_of_its_tasks_and_is_told(
    harness: CoreHarness,
) -> None:
    ours = [await submit(harness) for _ in range(30)]
    for _ in range(3):  # three other workers give one label each
        other = await harness.agent()
        await work(other, 1)
        await other.read_until(lambda a: len(a.acked) == 1)  # counted before it leaves
        await other.close()
        harness.agents.remove(other)
    busy = await harness.agent()

    labeled = await work(busy, 7)  # 7 of 10 labels: at the cap (2 / 4 workers = 50 %)

    assert await busy.held_after() == 7
    await busy.read_until(lambda a: bool(a.notices))
    [notice] = busy.notices
    assert notice.code == "capped" and "one customer's labels" in notice.message
    assert set(labeled) <= set(ours)
    # The cap is per customer: another customer's task still goes to it.
    theirs = await submit(harness, auth=await other_customer(harness))
    [*_, offered] = await busy.assignments(8)
    assert offered.task_id == theirs


@pytest.mark.core_settings(customer_share_cap=0.25, customer_share_min_labels=5, rate_limit=False)
async def test_a_lone_worker_is_never_capped(harness: CoreHarness) -> None:
    ours = [await submit(harness) for _ in range(12)]
    agent = await harness.agent()

    labeled = await work(agent, 12)

    assert set(labeled) == set(ours)
    assert not agent.notices


@pytest.mark.core_settings(rate_limit=False, consensus_refresh_seconds=0.1)
async def test_three_workers_keep_labeling_a_family_past_the_engines_share_cap(harness: CoreHarness) -> None:
    """The engine caps a worker at 25 % of a family's labels once it has 200; three workers
    cannot all be under it, so the cap in force is twice an equal share (67 %) and no task is
    left without anyone to serve it."""
    agents = [await harness.agent(max_in_flight=4) for _ in range(3)]

    async def answer(agent: Agent) -> None:
        done = 0
        while True:
            await agent.read_until(lambda a, seen=done: len(a.assigned) > seen, timeout=3600)
            for assignment in agent.assigned[done:]:  # the truth is in the URL: always right
                await agent.label(assignment.task_id, assignment.data_url.rsplit("/", 1)[1].split("-")[0])
            done = len(agent.assigned)

    runners = [asyncio.get_running_loop().create_task(answer(a)) for a in agents]
    try:
        reply_ids = []
        for n in range(120):  # 2-3 labels each: past 200 labels in the family
            reply = await harness.tasks.SubmitTask(
                tasks_pb2.SubmitTaskRequest(
                    task=tasks_pb2.TaskInput(
                        type="image_classification",
                        data_url=f"https://example.com/{('cat', 'dog')[n % 2]}-{uuid.uuid4().hex}.jpg",
                        label_spec=common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"]),
                        consensus_threshold=2,
                        consensus_method="adaptive",
                    )
                ),
                metadata=harness.auth,
            )
            reply_ids.append(reply.task.task_id)
        results = [await harness.wait_decided(task_id) for task_id in reply_ids]
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    assert sum(r.worker_count for r in results) > 200
    assert [r.consensus_label for r in results] == [("cat", "dog")[n % 2] for n in range(120)]
    assert all(r.worker_count >= 2 for r in results)
    assert not any(a.notices for a in agents)
