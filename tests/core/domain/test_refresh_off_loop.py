"""The adaptive engine's refresh split in three (copy, EM on the copy, adopt) so a dispatcher can
run the EM in a worker thread: the same estimates as a refresh in place, labels taken meanwhile
kept, an operator's reinstatement kept, and the event loop free while it runs (docs/quality.md,
"In the product")."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import pytest

from asg_grpc.domain.consensus_engine import ConsensusSpec, NeedOne
from asg_grpc.domain.dawid_skene import AdaptiveEngine
from asg_grpc.domain.worker_model import AdaptiveParams
from tests.core.domain.crowd import OPTIONS, Crowd


def crowded(
    seed: int, tasks: int = 300, refresh_every: int = 100, params: AdaptiveParams | None = None
) -> AdaptiveEngine:
    engine = AdaptiveEngine(params)
    Crowd(random.Random(seed), good=8, spammers=2).run(engine, tasks=tasks, refresh_every=refresh_every)
    return engine


def test_a_split_refresh_gives_the_same_estimates_as_one_in_place() -> None:
    in_place, split = crowded(3), crowded(3)
    in_place.refresh()
    split.apply_refresh(split.prepare_refresh().run())
    assert split.snapshot() == in_place.snapshot()


def test_labels_taken_while_the_em_runs_are_kept() -> None:
    engine = crowded(4)
    job = engine.prepare_refresh()
    engine.open("late", ConsensusSpec(OPTIONS, min_labels=3))
    assert isinstance(engine.add_label("late", "newcomer", "a"), NeedOne)  # a worker the copy lacks
    engine.apply_refresh(job.run())
    (fam,) = engine.families.values()
    (done,) = job.families.values()
    assert engine.book.labels["late"] == [("newcomer", "a")]
    assert fam.labels == sum(len(engine.book.labels[t]) for t in fam.tasks)
    assert "newcomer" in fam.workers and "newcomer" not in done.workers
    assert fam.pooled == done.pooled  # the estimates the hot path reads are the job's
    assert isinstance(engine.add_label("late", "good0", "a"), NeedOne)  # rebuilt from them
    assert engine.tasks["late"].epoch == fam.epoch


def test_an_operator_reinstatement_during_the_em_is_not_undone() -> None:
    engine = crowded(1)
    engine.refresh()
    ((key, fam),) = engine.families.items()
    banned = [w for w, s in fam.workers.items() if s.banned]
    assert banned, "the crowd's spammers are banned after a refresh"
    job = engine.prepare_refresh()
    engine.reinstate(banned[0], key)
    engine.apply_refresh(job.run())
    assert not fam.workers[banned[0]].banned


@pytest.mark.asyncio
async def test_the_event_loop_keeps_running_while_the_em_runs_in_a_thread() -> None:
    # A window as large as the crowd: every task is swept, so the sweep is long.
    engine = crowded(5, tasks=10_000, refresh_every=2500, params=AdaptiveParams(window=10_000))
    started = time.perf_counter()
    engine.prepare_refresh().run()
    alone = time.perf_counter() - started
    assert alone > 0.05, "a sweep long enough to see the loop stall"
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    job = engine.prepare_refresh()
    started = time.perf_counter()
    await asyncio.to_thread(job.run)
    sweep = time.perf_counter() - started
    engine.apply_refresh(job)
    stop.set()
    await tick
    # On the loop the sweep would be one gap as long as itself; in a thread the loop gets the
    # interpreter back every switch interval (5 ms), so it ticks many times during the sweep.
    # The median, not the longest gap: a busy machine may hold either thread off now and then.
    assert len(gaps) >= 5
    assert statistics.median(gaps) < sweep / 5
