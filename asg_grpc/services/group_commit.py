"""Group commit: requests that arrive together are written in one transaction.

Each commit writes every page it touched to the WAL once, whatever the number of rows, so many
small writes in one commit cost far less than one commit each. Callers still get their own
outcome, in order: `__call__` returns one item's result (or raises its exception), `many`
returns one result or exception per item. Both join the same group, so a call carrying many
items and concurrent calls carrying one share a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, run: Callable[[list[Item]], Sequence[Result | Exception]], *, linger: float = 0.0005
    ) -> None:
        self._run = run
        # How long the first request of a group waits for others: a fraction of a commit.
        self._linger = linger
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []

    async def __call__(self, item: Item) -> Result:
        future = self._join(item)
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_later(self._linger, self._flush)
        return await future

    def many(self, items: Sequence[Item]) -> list[Result | BaseException]:
        """Each item's result or exception, in order, committed now with whatever single items
        were waiting (many items are a group already). It does not yield to the event loop:
        a caller answers at once, before other work queued meanwhile can delay it."""
        futures = [self._join(item) for item in items]
        self._flush()  # resolves every future it takes, these among them
        return [future.exception() or future.result() for future in futures]

    def _join(self, item: Item) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:  # `many` committed the group before its linger ran out
            return
        try:
            outcomes = self._run([item for item, _ in pending])
        except Exception as exc:  # the whole commit failed: every caller sees why
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(pending, outcomes, strict=True):
            if future.done():  # the caller went away (cancelled RPC)
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
