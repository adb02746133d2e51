"""`consensus_method: "adaptive"` through the real core: real gRPC, simulated workers speaking the
Work protocol, the SQLite store. The engine decides when a task has enough labels, gold tasks
pin who is worth asking, and a restart changes no decision (docs/quality.md, In the product)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from asg_grpc.server import Core
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, common_pb2, labeling_pb2, tasks_pb2
from tests.core.labeling.conftest import OPERATOR, Agent, CoreHarness, settings_for

pytestmark = pytest.mark.asyncio

ASG = str(Path(sys.executable).with_name("asg"))

ANIMALS = ("cat", "dog")
# Answers a worker gives: (the assignment, what the task's truth is) → option.
Policy = Callable[[labeling_pb2.Assignment, str], str]


def honest(assignment: labeling_pb2.Assignment, truth: str) -> str:
    return truth


def always_first(assignment: labeling_pb2.Assignment, truth: str) -> str:
    """A spammer: always the first option, so its label says nothing about the item."""
    return assignment.label_spec.options[0]


class Crowd:
    """Agents answering every task they are offered by their policy, in the background."""

    def __init__(self, harness: CoreHarness) -> None:
        self.harness = harness
        self.truth: dict[str, str] = {}
        self.offered: dict[Agent, list[str]] = {}
        self.tokens: dict[Agent, str] = {}
        self._runners: list[asyncio.Task[None]] = []

    async def join(self, policy: Policy, token: str | None = None, max_in_flight: int = 4) -> Agent:
        """A worker (a registered one again when `token` is given) starts answering."""
        token = token or await self.harness.register_worker()
        agent = Agent(self.harness.labeling, token)
        await agent.hello(max_in_flight)
        self.harness.agents.append(agent)
        self.tokens[agent] = token
        self.offered[agent] = []
        self._runners.append(asyncio.get_running_loop().create_task(self._answer(agent, policy)))
        return agent

    async def _answer(self, agent: Agent, policy: Policy) -> None:
        done = 0
        while True:
            await agent.read_until(lambda a, seen=done: len(a.assigned) > seen, timeout=3600)
            for assignment in agent.assigned[done:]:
                self.offered[agent].append(assignment.task_id)
                await agent.label(assignment.task_id, policy(assignment, self.truth[assignment.task_id]))
            done = len(agent.assigned)

    async def submit(
        self,
        truth: str,
        *,
        method: str = "adaptive",
        threshold: int = 2,
        max_labels: int | None = None,
        gold: bool = False,
        options: tuple[str, ...] = ANIMALS,
    ) -> str:
        task = tasks_pb2.TaskInput(
            type="image_classification",
            data_url=f"https://example.com/{uuid.uuid4().hex}.jpg",
            label_spec=common_pb2.LabelSpec(question="Animal?", options=options),
            consensus_threshold=threshold,
            consensus_method=method,
            max_labels=max_labels,
            gold_label=truth if gold else None,
        )
        # Known before any worker can be offered it: the answers look the truth up.
        reply = await self.harness.tasks.SubmitTask(
            tasks_pb2.SubmitTaskRequest(task=task), metadata=self.harness.auth
        )
        task_id = reply.task.task_id
        self.truth[task_id] = truth
        return task_id

    async def decided(self, task_ids: list[str]) -> list[tasks_pb2.TaskResult]:
        return [await self.harness.wait_decided(task_id) for task_id in task_ids]

    async def banned(self, agent: Agent, timeout: float = 20.0) -> None:
        """Until the operator's worker list shows `agent` banned: a refresh judged its gold
        answers. The engine refreshes on its own cadence, later on a loaded machine."""
        assert agent.welcome is not None
        request = labeling_pb2.ListWorkerQualityRequest(worker_id=agent.welcome.worker_id)
        operator = [("authorization", f"Bearer {OPERATOR}")]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            reply = await self.harness.labeling.ListWorkerQuality(request, metadata=operator)
            if any(w.banned for w in reply.workers):
                return
            assert asyncio.get_running_loop().time() < deadline, f"not banned: {reply}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners.clear()


@contextlib.asynccontextmanager
async def running(tmp: Path, api_key: str | None = None) -> AsyncIterator[CoreHarness]:
    """A core on `tmp` (a second one on the same data dir is a restart), refreshing fast."""
    core = Core(settings_for(tmp, consensus_refresh_seconds=0.1, rate_limit=False))
    await core.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{core.port}")
    harness = CoreHarness(core, channel)
    if api_key is None:
        reply = await billing_pb2_grpc.BillingServiceStub(channel).RegisterCustomer(
            billing_pb2.RegisterCustomerRequest(name="Adaptive", email="adaptive@example.com")
        )
        api_key = reply.api_key
    harness.api_key = api_key
    try:
        yield harness
    finally:
        for agent in harness.agents:
            await agent.close()
        await channel.close()
        await core.stop()


@pytest_asyncio.fixture
async def crowd(tmp_path: Path) -> AsyncIterator[Crowd]:
    async with running(tmp_path) as harness:
        crowd = Crowd(harness)
        try:
            yield crowd
        finally:
            await crowd.stop()


async def warm_up(crowd: Crowd, count: int = 12, threshold: int = 3, max_labels: int = 3) -> None:
    """Gold tasks: the engine learns who is right from those who answer them."""
    ids = [
        await crowd.submit(ANIMALS[i % 2], threshold=threshold, max_labels=max_labels, gold=True)
        for i in range(count)
    ]
    for result in await crowd.decided(ids):
        assert result.consensus_label == crowd.truth[result.task_id] or result.worker_count == max_labels
    await asyncio.sleep(0.4)  # a few refreshes


async def test_agreeing_good_workers_decide_at_two_labels(crowd: Crowd) -> None:
    for _ in range(3):
        await crowd.join(honest)
    await warm_up(crowd)

    task_id = await crowd.submit("dog", threshold=2)
    [result] = await crowd.decided([task_id])

    assert result.status == common_pb2.TASK_STATUS_VERIFIED
    assert (result.consensus_label, result.worker_count, result.agreement_count) == ("dog", 2, 2)
    # The engine's probability, not agreement / labels (which would be exactly 1.0).
    assert 0.5 < result.confidence < 1.0


async def test_a_new_crowd_buys_more_than_two_labels_before_it_is_sure(crowd: Crowd) -> None:
    """Unknown workers are a priori 70 % right: two agreeing labels are not 95 % sure."""
    for _ in range(5):
        await crowd.join(honest)
    [result] = await crowd.decided([await crowd.submit("cat", threshold=2)])
    assert result.consensus_label == "cat"
    assert 2 < result.worker_count <= 10 and result.agreement_count == result.worker_count


async def test_a_disputed_task_buys_labels_up_to_max_labels(crowd: Crowd) -> None:
    for i in range(6):
        await crowd.join(lambda assignment, truth, i=i: ANIMALS[i % 2])  # two camps
    task_id = await crowd.submit("cat", threshold=2, max_labels=5)
    [result] = await crowd.decided([task_id])

    assert result.worker_count == 5  # every label it could buy, and no more
    assert len(result.labels) == 5
    assert result.status == common_pb2.TASK_STATUS_VERIFIED  # the leading option, unsure
    assert result.confidence < 0.95


async def test_gold_pins_a_spammer_who_then_gets_no_work_of_that_family(crowd: Crowd) -> None:
    spammer = await crowd.join(always_first)  # first: offered every task while it may be
    good = [await crowd.join(honest) for _ in range(3)]
    await warm_up(crowd, count=20, threshold=2, max_labels=4)
    assert len(crowd.offered[spammer]) >= 10  # enough gold answers to judge it
    await crowd.banned(spammer)

    animals = [await crowd.submit(ANIMALS[i % 2], threshold=2) for i in range(6)]
    majority = await crowd.submit("dog", method="majority", threshold=3)
    other_family = await crowd.submit("yes", method="majority", threshold=4, options=("yes", "no"))
    results = await crowd.decided([*animals, majority, other_family])

    offered = set(crowd.offered[spammer])
    assert not offered & {*animals, majority}  # banned for cat/dog, whichever method decides
    assert other_family in offered  # a ban is per family
    assert [r.consensus_label for r in results[:6]] == [ANIMALS[i % 2] for i in range(6)]
    assert results[6].consensus_label == "dog" and results[6].worker_count == 3
    assert all(any(t in crowd.offered[a] for a in good) for t in animals)
    # Its agent was told why, naming the family (again only if a ban lifted and came back).
    await spammer.read_until(lambda a: any(n.code == "banned" for n in a.notices))
    banned = [n for n in spammer.notices if n.code == "banned"]
    assert all(list(n.family_options) == list(ANIMALS) for n in banned)
    assert "quality floor" in banned[0].message and "reinstate" in banned[0].message
    assert not any(a.notices for a in good)


@pytest.mark.xfail(
    strict=False,
    reason="open defect (issue 13, closing note 28): about 1 run in 5 the worker banned before the "
    "restart is offered the family's new tasks after it; decisions survive, the ban sometimes not",
)
async def test_a_restart_keeps_decisions_and_what_the_engine_learnt(tmp_path: Path) -> None:
    async with running(tmp_path) as harness:
        crowd = Crowd(harness)
        first = await crowd.join(always_first)
        spammer = crowd.tokens[first]
        good = [crowd.tokens[await crowd.join(honest)] for _ in range(3)]
        await warm_up(crowd, count=20, threshold=2, max_labels=4)
        await crowd.banned(first)
        decided = [await crowd.submit(ANIMALS[i % 2], threshold=2) for i in range(4)]
        before = await crowd.decided(decided)
        await crowd.stop()
        api_key, truth = harness.api_key, crowd.truth

    async with running(tmp_path, api_key) as harness:
        crowd = Crowd(harness)
        crowd.truth = truth
        after = [await harness.result(task_id) for task_id in decided]
        assert [(r.consensus_label, r.confidence, r.worker_count) for r in after] == [
            (r.consensus_label, r.confidence, r.worker_count) for r in before
        ]
        # The engine came back with what it learnt: the spammer is still banned for the
        # family, and the honest workers it knows decide at two labels at once.
        banned = await crowd.join(always_first, spammer)
        for token in good:
            await crowd.join(honest, token)
        new = [await crowd.submit(ANIMALS[i % 2], threshold=2) for i in range(3)]
        results = await crowd.decided(new)
        await crowd.stop()
    assert [(r.consensus_label, r.worker_count) for r in results] == [("cat", 2), ("dog", 2), ("cat", 2)]
    assert not set(crowd.offered[banned]) & set(new)


async def asg_worker(harness: CoreHarness, *args: str) -> tuple[int, str]:
    """`asg worker …` as an operator runs it (a process: the core shares this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        ASG, "worker", *args, "--grpc", f"127.0.0.1:{harness.core.port}",
        env={**os.environ, "ASG_OPERATOR_TOKEN": OPERATOR},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_an_operator_lists_shows_and_reinstates_a_banned_worker(crowd: Crowd) -> None:
    spammer = await crowd.join(always_first)
    for _ in range(3):
        await crowd.join(honest)
    await warm_up(crowd, count=20, threshold=2, max_labels=4)
    await crowd.banned(spammer)
    assert spammer.welcome is not None
    spammer_id = spammer.welcome.worker_id

    code, out = await asg_worker(crowd.harness, "list", "--banned")
    assert code == 0, out
    [row] = out.splitlines()[1:]
    assert row.split()[:3] == [spammer_id, "cat,dog", "banned"]

    code, out = await asg_worker(crowd.harness, "show", spammer_id)
    assert code == 0, out
    gold = out.splitlines()[1].split()[4]
    assert gold.endswith(f"/{len(crowd.offered[spammer])}")  # every answer it gave was on gold

    code, out = await asg_worker(crowd.harness, "reinstate", spammer_id, "--family", "cat,dog")
    assert code == 0, out
    assert out.splitlines()[1].split()[2] == "reinstated"
    task_id = await crowd.submit("dog", threshold=4, max_labels=4)
    await crowd.decided([task_id])
    assert task_id in crowd.offered[spammer]  # offered work of the family again

    code, out = await asg_worker(crowd.harness, "reinstate", "wkr_unknown")
    assert code == 1 and "NOT_FOUND" in out
