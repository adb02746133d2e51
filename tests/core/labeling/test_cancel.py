"""Cancelling a task that workers are labeling: over real gRPC streams to a real core."""

from __future__ import annotations

import asyncio
import time

import pytest

from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, common_pb2, tasks_pb2
from tests.core.labeling.conftest import CoreHarness, stored_options

pytestmark = pytest.mark.asyncio
LABEL_PRICE = 300  # the sandbox tier's (docs/billing.md)


async def cancel(harness: CoreHarness, task_id: str) -> tasks_pb2.TaskResult:
    return await harness.tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=task_id), metadata=harness.auth)


async def settlement_of(harness: CoreHarness, task_id: str) -> tasks_pb2.Settlement:
    for _ in range(100):
        result = await harness.result(task_id)
        if result.HasField("settlement"):
            return result.settlement
        await asyncio.sleep(0.1)
    raise AssertionError(f"{task_id} was never paid")


async def test_cancel_stops_the_holders_and_bills_and_pays_the_labels_collected(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=3)
    labeled, holding = await harness.agent(), await harness.agent()
    await labeled.assignments(1)
    await holding.assignments(1)
    await labeled.label(task_id, "cat")
    await labeled.read_until(lambda a: task_id in a.acked)

    result = await cancel(harness, task_id)
    assert result.status == common_pb2.TASK_STATUS_CANCELLED and result.decided
    assert (result.failure_reason, result.worker_count) == ("cancelled", 1)
    await holding.read_until(lambda a: any(e.code == "withdrawn" for e in a.errors))
    await holding.label(task_id, "dog")  # too late: not held any more
    await holding.read_until(lambda a: len(a.errors) == 2)
    assert holding.errors[1].code == "not_held"
    assert stored_options(harness, task_id) == ["cat"]

    # The one label bought is paid to its worker and billed at the label price, no task price.
    settlement = await settlement_of(harness, task_id)
    assert settlement.total_cost_sats == LABEL_PRICE
    assert (await harness.result(task_id)).status == common_pb2.TASK_STATUS_CANCELLED
    usage = await billing_pb2_grpc.BillingServiceStub(harness.channel).GetUsage(
        billing_pb2.GetUsageRequest(), metadata=harness.auth
    )
    assert (usage.total.sats_charged, usage.total.labels_collected, usage.total.tasks_failed) == (
        LABEL_PRICE,
        1,
        1,
    )


async def test_a_label_for_a_task_cancelled_by_another_core_is_refused_not_stored(
    harness: CoreHarness,
) -> None:
    task_id = await harness.submit(threshold=2)
    agent = await harness.agent()
    await agent.assignments(1)
    me = await billing_pb2_grpc.BillingServiceStub(harness.channel).GetCustomer(
        billing_pb2.GetCustomerRequest(), metadata=harness.auth
    )
    # Another core process (not dispatching) cancels it in the store: this dispatcher is not told.
    harness.core.store.cancel_task(me.customer_id, task_id, time.time())
    await agent.label(task_id, "cat")
    await agent.read_until(lambda a: bool(a.errors) or bool(a.acked))
    assert [e.code for e in agent.errors] == ["withdrawn"] and agent.acked == []
    assert stored_options(harness, task_id) == []
    assert (await harness.result(task_id)).worker_count == 0
