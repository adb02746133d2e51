"""A stop of the core's background loops returns even when a loop loses its cancel: the race
that hung a webhook worker's stop for 300 s in one full run (Python 3.11's `wait_for` returns
the awaited result when the cancel arrives in the turn the event is set)."""

from __future__ import annotations

import asyncio

import pytest

from asg_grpc.background import stop_tasks, wait_event


async def poll_loop(event: asyncio.Event, wait: object) -> None:
    while True:
        await wait(event)  # type: ignore[operator]
        event.clear()


async def cancel_as_the_event_is_set(wait: object) -> asyncio.Task[None]:
    """Start a loop waiting on an event, then set the event and cancel the loop in one turn."""
    event = asyncio.Event()
    task = asyncio.get_running_loop().create_task(poll_loop(event, wait))
    await asyncio.sleep(0.01)  # the loop now waits on the event
    event.set()
    task.cancel()
    await asyncio.sleep(0.05)
    return task


@pytest.mark.asyncio
async def test_wait_event_keeps_a_cancel_that_arrives_as_the_event_is_set() -> None:
    task = await cancel_as_the_event_is_set(lambda e: wait_event(e, 5.0))
    assert task.cancelled()


@pytest.mark.asyncio
async def test_the_race_loses_the_cancel_with_wait_for_on_this_python() -> None:
    """What wait_event is for: the same loop on `asyncio.wait_for` keeps running (3.11)."""
    task = await cancel_as_the_event_is_set(lambda e: asyncio.wait_for(e.wait(), 5.0))
    try:
        if not task.done():
            assert not task.cancelled()  # the cancel was swallowed: the loop goes on
        else:
            pytest.skip("this Python's wait_for keeps the cancel (3.12+); nothing to contrast")
    finally:
        await stop_tasks(task)
    assert task.done()


@pytest.mark.asyncio
async def test_stop_tasks_cancels_again_a_task_that_swallowed_its_cancel() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_tasks(task, None), 10)
    assert task.cancelled() and swallowed == 2


@pytest.mark.asyncio
async def test_stop_tasks_logs_a_loop_that_had_failed(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(broken(), name="broken-loop")
    await asyncio.sleep(0)
    await stop_tasks(task)
    assert "background task broken-loop had failed" in caplog.text
