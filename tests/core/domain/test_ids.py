"""Identifiers: prefix, 12 hex digits of milliseconds, 16 random hex digits; sorting by id
sorts by creation time."""

from __future__ import annotations

import re

from asg_grpc.domain.ids import new_id, new_ids

ID = re.compile(r"^(?P<prefix>[a-z]+)_(?P<ms>[0-9a-f]{12})(?P<rand>[0-9a-f]{16})$")


def test_id_has_prefix_time_and_randomness() -> None:
    match = ID.match(new_id("tsk", 1_775_736_000.123))

    assert match is not None
    assert match["prefix"] == "tsk"
    assert int(match["ms"], 16) == 1_775_736_000_123


def test_ids_are_unique_for_the_same_instant() -> None:
    now = 1_775_736_000.0

    assert len({new_id("tsk", now) for _ in range(1000)}) == 1000


def test_ids_sort_by_creation_time() -> None:
    times = [1_000_000_000.0, 1_500_000_000.5, 1_775_736_000.0, 4_000_000_000.0]

    ids = [new_id("cust", t) for t in times]

    assert sorted(ids) == ids


def test_new_id_reads_the_clock_when_not_given_a_time() -> None:
    before = new_id("bat", 0.0)
    now = new_id("bat")

    assert ID.match(now) is not None
    assert now > before


def test_many_ids_share_the_instant_and_differ() -> None:
    ids = new_ids("tsk", 1000, 1_775_736_000.5)

    assert len(set(ids)) == 1000
    for task_id in ids:
        match = ID.match(task_id)
        assert match is not None
        assert (match["prefix"], int(match["ms"], 16)) == ("tsk", 1_775_736_000_500)


def test_many_ids_of_zero_is_empty() -> None:
    assert new_ids("tsk", 0, 1.0) == []
