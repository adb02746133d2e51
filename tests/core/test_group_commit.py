"""The core's one group commit: single and carried submissions that arrive together share a
commit, and each caller still gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from asg_grpc.services.group_commit import GroupCommit


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
        many = group.many([3, -4, 5])
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
        return group.many([1, 2])

    assert [type(o) for o in asyncio.run(scenario())] == [OSError, OSError]
    with pytest.raises(OSError):
        asyncio.run(group(3))
