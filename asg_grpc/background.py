"""The core's background loops end one way: cancelled, then awaited, so a stop returns only once
nothing of them runs (and a loop's own failure is logged, not lost in a cancelled task)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

RECANCEL_AFTER = 1.0  # seconds a cancelled task may take before it is cancelled again


async def stop_tasks(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel each task (None: never started) and wait until all have stopped.

    A task that swallowed its cancel (Python 3.11's `asyncio.wait_for` does when the awaited
    thing finishes in the same turn) is cancelled again rather than awaited for ever."""
    running = [t for t in tasks if t is not None]
    pending = set(running)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
        for task in pending:
            log.warning("background task %s still runs after a cancel; cancelling it again", task.get_name())
    for task in running:
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.error("background task %s had failed", task.get_name(), exc_info=failure)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set (True) or `timeout` passes (False), and never swallow a
    cancel (`asyncio.timeout` keeps it; 3.11's `wait_for` can lose it and hang a stop)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
            return True
    return False
