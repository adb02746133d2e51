"""Where a store call runs: on the event loop (SQLite), or on the store's own threads
(Aerospike), so the loop serves gRPC while the node answers.

The Aerospike client is synchronous: called on the core's event loop, every round trip stops
the loop for as long as the node takes to answer (docs/benchmarks.md measured the loop 96 %
busy, three quarters of it waiting). The client releases the GIL while it waits, so a call made
on another thread lets the loop run meanwhile. A caller hops once per store operation (a whole
group commit, labeling flush, payout step or fan-out page, never once per record):

    outcome = await offload_of(store)(partial(store.submit, batch, now))

SQLite keeps its path: its connection belongs to the loop's thread, and a commit is a few
hundred microseconds of CPU that a hop would only add to. `offload_of` answers `inline` for a
store without threads of its own, which runs the call at once, without yielding to the loop,
exactly as before. Aerospike's store is safe to call from several threads at once: every step
is a single-record atomic write designed for several cores sharing one namespace
(docs/storage-aerospike.md), and two threads of one core are no different.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")

# Independent callers hop at once (group commit, labeling flush, settler, webhook fan-out),
# each at most one operation in flight; a fifth waits for a thread.
STORE_THREADS = 4


class Offload(Protocol):
    def __call__(self, call: Callable[[], T]) -> Awaitable[T]: ...


async def inline(call: Callable[[], T]) -> T:
    """The call, run now on the caller's thread (it never yields to the loop)."""
    return call()


class StoreThreads:
    """A small fixed pool of threads for one store's calls; `close` waits for those running."""

    def __init__(self, threads: int = STORE_THREADS, name: str = "store") -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def __call__(self, call: Callable[[], T]) -> Awaitable[T]:
        return asyncio.wrap_future(self._pool.submit(call))

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """The call on a store thread, for a caller that may also have to wait for it
        synchronously (a flush the loop must finish before the next one)."""
        return self._pool.submit(call)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def threads_of(store: object) -> StoreThreads | None:
    """The store's own threads (`store.offload`, passed through the core's timing wrapper),
    None for a store that runs on the loop."""
    threads = getattr(store, "offload", None)
    return threads if isinstance(threads, StoreThreads) else None


def offload_of(store: object) -> Offload:
    """How to call `store` from the event loop: its own threads when it has them, else inline."""
    return threads_of(store) or inline
