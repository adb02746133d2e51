"""What the dispatcher saves of the adaptive engine, and when it re-estimates (docs/quality.md,
"In the product" and "When the engine re-estimates"): the saved state restores an engine that
decides every open task as the live one would, it leaves out what only decided tasks had (their
posterior state), a snapshot saved before that change still loads, and a refresh is due on
growth, on a pause or on age, not on every label, and sooner while the engine is small."""

from __future__ import annotations

import random

import orjson

from asg_grpc.dispatch.quality import Cadence, Quality, encode_snapshot
from asg_grpc.domain.consensus_engine import ConsensusSpec, NeedOne
from asg_grpc.domain.dawid_skene import AdaptiveEngine
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.domain.crowd import OPTIONS, Crowd

OPEN = [f"open-{i}" for i in range(6)]


def learnt(store: SQLiteStore, seed: int = 5) -> Quality:
    """A core's engine after 300 tasks of a crowd with spammers, 6 tasks still open."""
    quality = Quality(store)
    Crowd(random.Random(seed), good=8, spammers=2).run(quality.engine, tasks=300, refresh_every=100)
    for task_id in OPEN:
        quality.engine.open(task_id, ConsensusSpec(OPTIONS, min_labels=3))
        assert isinstance(quality.engine.add_label(task_id, "good-0", OPTIONS[0]), NeedOne)
    return quality


def finish(engine: AdaptiveEngine) -> list[object]:
    """The open tasks' next labels, the same for any engine: each verdict."""
    return [
        engine.add_label(t, f"good-{n}", OPTIONS[n % 2])
        for t in OPEN
        for n in (1, 2, 3)
        if t not in engine.book.final
    ]


def test_a_saved_engine_decides_the_open_tasks_as_the_live_one(store: SQLiteStore) -> None:
    live = learnt(store)
    live.save(0.0)
    restored = Quality(store).engine
    assert finish(restored) == finish(live.engine)
    live.engine.refresh()
    restored.refresh()
    assert restored.report() == live.engine.report()


def test_the_saved_state_is_the_engines_snapshot_without_decided_tasks_posteriors(
    store: SQLiteStore,
) -> None:
    engine = learnt(store).engine
    full = orjson.loads(orjson.dumps(engine.snapshot()))
    saved = orjson.loads(encode_snapshot(engine))
    assert set(saved["tasks"]) == set(OPEN)  # the engine drops a task's posterior when decided
    assert saved == full and saved["version"] == 2


def test_a_snapshot_saved_whole_by_an_older_core_still_loads(store: SQLiteStore) -> None:
    live = learnt(store)
    store.save_consensus_state(orjson.dumps(live.engine.snapshot()), 0.0)
    assert finish(Quality(store).engine) == finish(live.engine)


def label(quality: Quality, count: int, start: int = 0) -> None:
    """`count` labels, one per task, from workers the engine keeps asking."""
    for n in range(start, start + count):
        quality.engine.open(f"t{n}", ConsensusSpec(OPTIONS, min_labels=3))
        quality.engine.add_label(f"t{n}", "w", OPTIONS[0])


def test_a_refresh_is_due_on_half_as_many_labels_again_or_a_pause(store: SQLiteStore) -> None:
    quality = Quality(store, Cadence(interval=0.0, growth=0.5, max_age=3600))
    assert not quality.due()  # nothing labeled
    label(quality, 100)
    assert quality.due()  # from nothing, any growth counts
    quality.refresh()
    label(quality, 30, start=100)
    assert not quality.due()  # 30 on 100: not half as many again, and still labeling
    label(quality, 10, start=130)
    assert not quality.due()
    label(quality, 10, start=140)
    assert quality.due()  # 50 on 100
    quality.refresh()
    label(quality, 5, start=150)
    assert not quality.due()
    assert quality.due()  # no label since the last look: labeling paused, catch up
    quality.refresh()
    assert not quality.due()  # nothing new


def test_a_refresh_is_due_on_age_whatever_the_growth(store: SQLiteStore) -> None:
    quality = Quality(store, Cadence(interval=0.0, growth=0.5, max_age=0.0))
    label(quality, 100)
    quality.refresh()
    label(quality, 1, start=100)
    assert quality.due()


def test_a_small_engine_refreshes_before_the_interval_a_full_one_waits_for_it(
    store: SQLiteStore,
) -> None:
    small = Quality(store, Cadence(interval=3600, full_labels=10**12))
    label(small, 100)
    assert small.due()  # 100 labels of 10¹²: the wait is 0.36 µs of the hour, long past
    full = Quality(store, Cadence(interval=3600, full_labels=100))
    label(full, 100)
    assert not full.due()  # as many labels as `full_labels`: a whole hour


def test_refreshes_that_change_little_wait_for_more_growth_until_one_changes_something(
    store: SQLiteStore,
) -> None:
    quality = Quality(store, Cadence(interval=0.0))
    crowd = Crowd(random.Random(5), good=8, spammers=2)
    crowd.run(quality.engine, tasks=300, refresh_every=100)
    growth = []
    for _ in range(4):
        quality.refresh()  # nothing new: the estimates stay where they are
        growth.append(quality.growth)
    assert growth == [1.0, 2.0, 4.0, 4.0]
    Crowd(random.Random(6), good=2, spammers=6).run(quality.engine, tasks=200, refresh_every=10**6, start=300)
    quality.refresh()  # a crowd of spammers moved the estimates
    assert quality.growth == 0.5
