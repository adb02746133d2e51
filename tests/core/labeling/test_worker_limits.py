"""Per-worker limits of docs/api.md over a real gRPC channel: Work streams open at once, and
labels per second (a token bucket over all of a worker's streams)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.core.labeling.conftest import Agent, CoreHarness, stored_options

pytestmark = pytest.mark.asyncio


@pytest.mark.core_settings(max_streams_per_worker=2)
async def test_a_stream_past_the_per_worker_limit_is_resource_exhausted(harness: CoreHarness) -> None:
    token = await harness.register_worker()
    first, second = Agent(harness.labeling, token), Agent(harness.labeling, token)
    harness.agents += [first, second]
    await first.hello()
    await second.hello()

    third = Agent(harness.labeling, token)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await third.hello()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "a worker may have at most 2 Work streams open"
    await third.close()

    # Another worker is not counted against this one, and a closed stream frees its place.
    await harness.agent()
    await first.close()
    harness.agents.remove(first)
    for _ in range(50):
        again = Agent(harness.labeling, token)
        try:
            await again.hello()
            break
        except grpc.aio.AioRpcError:
            await again.close()
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the stream closed but its place was not freed")
    harness.agents.append(again)


@pytest.mark.core_settings(worker_label_rate=0.5, worker_label_burst=2)
async def test_labels_over_the_worker_rate_end_the_stream_with_retry_after_losing_nothing(
    harness: CoreHarness,
) -> None:
    task_ids = [await harness.submit(threshold=2) for _ in range(3)]
    token = await harness.register_worker()
    agent = Agent(harness.labeling, token)
    harness.agents.append(agent)
    await agent.hello(max_in_flight=3)
    assigned = [a.task_id for a in await agent.assignments(3)]
    assert sorted(assigned) == sorted(task_ids)

    for task_id in assigned:  # one Labels message each: the third finds the bucket empty
        await agent.label(task_id, "cat")
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await agent.ended()
    error = limited.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "a worker may send at most 0.5 labels per second (burst 2); retry after 2 s"
    assert dict(error.trailing_metadata() or ())["retry-after"] == "2"

    # What came before the limit is stored; the refused label is not, and its task is offered
    # again (to this worker's next stream, once the bucket has refilled).
    assert [stored_options(harness, t) for t in assigned] == [["cat"], ["cat"], []]
    await asyncio.sleep(2)
    retry = Agent(harness.labeling, token)
    harness.agents.append(retry)
    await retry.hello(max_in_flight=3)
    assert [a.task_id for a in await retry.assignments(1)] == [assigned[2]]
