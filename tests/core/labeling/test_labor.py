"""A task's `labor` over a real gRPC channel (docs/challenge.md, "Opting in one batch or task"):
`challenge` tasks go to workers registered as challenge gateways only; a gateway's stream that
asks for opted-in work only gets nothing else; anything else is today's dispatch."""

from __future__ import annotations

import uuid

import grpc
import pytest

from asg_grpc.v1 import common_pb2, labeling_pb2, tasks_pb2
from tests.core.labeling.conftest import Agent, CoreHarness

pytestmark = pytest.mark.asyncio


def task_input(labor: str | None = None) -> tasks_pb2.TaskInput:
    return tasks_pb2.TaskInput(
        type="image_classification",
        data_url=f"https://example.com/{uuid.uuid4().hex}.jpg",
        label_spec=common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"]),
        consensus_threshold=2,
        labor=labor,
    )


async def submit(harness: CoreHarness, labor: str | None = None) -> str:
    reply = await harness.tasks.SubmitTask(
        tasks_pb2.SubmitTaskRequest(task=task_input(labor)), metadata=harness.auth
    )
    return reply.task.task_id


async def connect(harness: CoreHarness, *, gateway: bool, opted_in_only: bool = False) -> Agent:
    agent = Agent(harness.labeling, await harness.register_worker(challenge_gateway=gateway))
    await agent.hello(4, opted_in_only=opted_in_only)
    harness.agents.append(agent)
    return agent


async def test_a_challenge_task_goes_to_challenge_gateways_only(harness: CoreHarness) -> None:
    opted = await submit(harness, "challenge")
    plain = await submit(harness)
    worker = await connect(harness, gateway=False)
    gateway = await connect(harness, gateway=True)
    only_opted = await connect(harness, gateway=True, opted_in_only=True)

    await gateway.assignments(2)
    await only_opted.assignments(1)
    assert await worker.held_after() == 1
    assert [a.task_id for a in worker.assigned] == [plain]
    assert {a.task_id for a in gateway.assigned} == {opted, plain}
    assert await only_opted.held_after() == 1 and only_opted.assigned[0].task_id == opted

    # The two gateways' labels decide it, as any two workers' would.
    await gateway.label(opted, "cat")
    await only_opted.label(opted, "cat")
    result = await harness.wait_decided(opted)
    assert result.consensus_label == "cat" and result.worker_count == 2
    task = await harness.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=opted), metadata=harness.auth)
    assert task.labor == "challenge"


async def test_a_batch_opts_in_the_tasks_that_name_no_labor(harness: CoreHarness) -> None:
    reply = await harness.tasks.SubmitBatch(
        tasks_pb2.SubmitBatchRequest(tasks=[task_input(), task_input("any")], labor="challenge"),
        metadata=harness.auth,
    )
    labors = []
    for task_id in reply.task_ids:
        task = await harness.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), metadata=harness.auth)
        labors.append(task.labor)
    assert labors == ["challenge", "any"]
    worker = await connect(harness, gateway=False)
    assert await worker.held_after() == 1 and worker.assigned[0].task_id == reply.task_ids[1]


@pytest.mark.parametrize("where", ["task", "batch"])
async def test_an_unknown_labor_is_refused_naming_the_field(harness: CoreHarness, where: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if where == "task":
            await harness.tasks.SubmitTask(
                tasks_pb2.SubmitTaskRequest(task=task_input("robots")), metadata=harness.auth
            )
        else:
            await harness.tasks.SubmitBatch(
                tasks_pb2.SubmitBatchRequest(tasks=[task_input()], labor="robots"), metadata=harness.auth
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "labor must be one of any, challenge"


async def test_only_a_challenge_gateway_may_ask_for_opted_in_work_only(harness: CoreHarness) -> None:
    call = harness.labeling.Work(
        iter([labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1, opted_in_only=True))]),
        metadata=[("authorization", f"Bearer {await harness.register_worker()}")],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hello.opted_in_only" in err.value.details()
