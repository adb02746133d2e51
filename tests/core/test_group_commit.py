"""The core's one group commit: single and carried submissions that arrive together share a
commit, and each caller still gets its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asg_grpc.services.group_commit import GroupCommit
from asg_grpc.store.offload import StoreThreads


class Refused(Exception):
    pass


def commits() -> tuple[GroupCommit[int, int], list[list[int]]]:
    runs: list[list[int]] = []

    def run(items: list[int]) -> list[int | Exception]:
        runs.append(items)
        return [Refused(str(i)) if i < 0 else i * 10 for i in items]

    return GroupCommit(run, linger=0.05), runs


def test_single_calls_and_a_call_of_many_share_one_commit() -> None:
    group, runs = commits()

    async def scenario() -> tuple[list[int], list[int | BaseException]]:
        singles = [asyncio.ensure_future(group(i)) for i in (1, 2)]
        await asyncio.sleep(0)  # both are waiting for the linger to end
        many = await group.many([3, -4, 5])
        return list(await asyncio.gather(*singles)), many

    singles, many = asyncio.run(scenario())

    assert runs == [[1, 2, 3, -4, 5]]
    assert singles == [10, 20]
    assert [m if isinstance(m, int) else str(m) for m in many] == [30, "-4", 50]


def test_a_single_call_raises_its_own_refusal_only() -> None:
    group, runs = commits()

    async def scenario() -> tuple[int, BaseException | None]:
        ok, refused = await asyncio.gather(group(7), group(-1), return_exceptions=True)
        assert isinstance(ok, int)
        return ok, refused if isinstance(refused, BaseException) else None

    ok, refused = asyncio.run(scenario())

    assert ok == 70 and isinstance(refused, Refused)
    assert runs == [[7, -1]]


def test_a_failed_commit_fails_every_caller_in_it() -> None:
    def run(items: list[int]) -> list[int | Exception]:
        raise OSError("disk full")

    group: GroupCommit[int, int] = GroupCommit(run)

    async def scenario() -> list[int | BaseException]:
        return await group.many([1, 2])

    assert [type(o) for o in asyncio.run(scenario())] == [OSError, OSError]
    with pytest.raises(OSError):
        asyncio.run(group(3))


def test_off_the_loop_one_commit_is_in_flight_and_what_came_meanwhile_is_the_next_group() -> None:
    """On a store with threads (Aerospike), the commit runs there: the loop keeps serving
    while it waits, commits stay in arrival order, and the calls that came during one commit
    make the next group together."""
    runs: list[list[int]] = []
    started, release = threading.Event(), threading.Event()
    threads = StoreThreads(threads=2)

    def run(items: list[int]) -> list[int | Exception]:
        runs.append(items)
        if len(runs) == 1:
            started.set()
            release.wait(5)  # the node is slow to answer the first commit
        return [Refused(str(i)) if i < 0 else i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(run, linger=0.01, offload=threads)

    async def scenario() -> tuple[list[int | BaseException], list[int | BaseException], int]:
        first = asyncio.ensure_future(group(1))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        # The first commit is in flight; the loop still runs: these join the next group.
        later = [asyncio.ensure_future(group(i)) for i in (2, -3)]
        many = asyncio.ensure_future(group.many([4, 5]))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        assert runs == [[1]] and not first.done()
        release.set()
        singles = await asyncio.gather(first, *later, return_exceptions=True)
        return list(singles), await many, ticks

    try:
        singles, many, ticks = asyncio.run(scenario())
    finally:
        threads.close()

    assert ticks == 5  # the loop was never blocked by the commit
    assert runs == [[1], [2, -3, 4, 5]]
    assert [s if isinstance(s, int) else str(s) for s in singles] == [10, 20, "-3"]
    assert many == [40, 50]


def test_off_the_loop_a_failed_commit_fails_every_caller_in_it_and_the_next_one_runs() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            raise OSError("node unreachable")
        return [i for i in items]

    threads = StoreThreads(threads=1)
    group: GroupCommit[int, int] = GroupCommit(run, offload=threads)

    async def scenario() -> tuple[list[int | BaseException], int]:
        failed = await group.many([1, 2])
        return failed, await group(3)

    try:
        failed, ok = asyncio.run(scenario())
    finally:
        threads.close()
    assert [type(o) for o in failed] == [OSError, OSError] and ok == 3
