"""The core's background loops end one way: cancelled, then awaited, so a stop returns only once
nothing of them runs (and a loop's own failure is logged, not lost in a cancelled task)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def stop_tasks(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel each task (None: never started) and wait until all have stopped."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    for task, outcome in zip(running, outcomes, strict=True):
        if isinstance(outcome, Exception):
            log.error("background task %s had failed", task.get_name(), exc_info=outcome)
