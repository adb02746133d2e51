"""Group commit: requests that arrive together are written in one transaction.

Each commit writes every page it touched to the WAL once, whatever the number of rows, so many
small writes in one commit cost far less than one commit each. Callers still get their own
outcome, in order: `__call__` returns one item's result (or raises its exception), `many`
returns one result or exception per item. Both join the same group, so a call carrying many
items and concurrent calls carrying one share a commit.

With an `offload` (a store with threads of its own: Aerospike, asg_grpc/store/offload.py) the
commit runs off the event loop, one hop per commit, and at most one commit is in flight:
what arrives meanwhile waits and becomes the next group, as soon as the one in flight is done.
So commits stay in arrival order, each one whole (the store reserves a customer's quota once
per commit), and a loaded node makes groups larger rather than piling up commits. Without
one (SQLite) the commit runs on the loop, as it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

from asg_grpc.store.offload import Offload

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        run: Callable[[list[Item]], Sequence[Result | Exception]],
        *,
        linger: float = 0.0005,
        offload: Offload | None = None,
    ) -> None:
        self._run = run
        # How long the first request of a group waits for others: a fraction of a commit.
        self._linger = linger
        self._offload = offload
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight: asyncio.Task[None] | None = None  # the offloaded commit running

    async def __call__(self, item: Item) -> Result:
        future = self._join(item)
        if len(self._pending) == 1 and self._in_flight is None:
            asyncio.get_running_loop().call_later(self._linger, self._flush)
        return await future

    async def many(self, items: Sequence[Item]) -> list[Result | BaseException]:
        """Each item's result or exception, in order, committed now with whatever single items
        were waiting (many items are a group already). On the loop (no offload) it does not
        yield: a caller answers at once, before other work queued meanwhile can delay it."""
        futures = [self._join(item) for item in items]
        if self._in_flight is None:
            self._flush()  # inline: resolves every future it takes, these among them
        if not all(future.done() for future in futures):
            await asyncio.wait(futures)
        return [future.exception() or future.result() for future in futures]

    def _join(self, item: Item) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        return future

    def _flush(self) -> None:
        if self._in_flight is not None:  # the commit in flight takes these next
            return
        pending, self._pending = self._pending, []
        if not pending:  # `many` committed the group before its linger ran out
            return
        items = [item for item, _ in pending]
        if self._offload is None:
            try:
                outcomes: Sequence[Result | Exception] | Exception = self._run(items)
            except Exception as exc:  # the whole commit failed: every caller sees why
                outcomes = exc
            _resolve(pending, outcomes)
            return
        self._in_flight = asyncio.get_running_loop().create_task(self._commit(pending, items))

    async def _commit(self, pending: list[tuple[Item, asyncio.Future[Result]]], items: list[Item]) -> None:
        assert self._offload is not None
        try:
            try:
                outcomes: Sequence[Result | Exception] | Exception = await self._offload(
                    partial(self._run, items)
                )
            except Exception as exc:
                outcomes = exc
            _resolve(pending, outcomes)
        finally:
            self._in_flight = None
        self._flush()  # what arrived while this commit was in flight, as one group


def _resolve(
    pending: Sequence[tuple[object, asyncio.Future[Result]]],
    outcomes: Sequence[Result | Exception] | Exception,
) -> None:
    """Each caller's outcome in order; a commit that failed whole fails every caller in it."""
    if isinstance(outcomes, Exception):
        for _, future in pending:
            if not future.done():
                future.set_exception(outcomes)
        return
    for (_, future), outcome in zip(pending, outcomes, strict=True):
        if future.done():  # the caller went away (cancelled RPC)
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
