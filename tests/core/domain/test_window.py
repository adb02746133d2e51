"""The engine's window of recent tasks and the fold (docs/quality.md, "The window and the fold"):
a refresh sweeps each family's open tasks and its `window` most recent closed ones; older closed
tasks leave their evidence in the workers' statistics and are dropped, so what the engine holds,
sweeps and saves stops growing with the tasks it has seen, while its estimates and decisions stay
those of an engine that keeps everything, and a restart still changes nothing."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson

from asg_grpc.domain.dawid_skene import AdaptiveEngine
from asg_grpc.domain.worker_model import AdaptiveParams
from tests.core.domain.crowd import Crowd

WINDOW = 60


def run(window: int, tasks: int = 1200, seed: int = 11) -> tuple[AdaptiveEngine, Crowd]:
    engine = AdaptiveEngine(AdaptiveParams(window=window))
    crowd = Crowd(random.Random(seed), good=8, spammers=2, contrarians=1)
    crowd.run(engine, tasks=tasks, refresh_every=100)
    engine.refresh()
    return engine, crowd


def test_the_engine_holds_its_window_not_every_task() -> None:
    engine, _ = run(WINDOW)
    (fam,) = engine.families.values()
    assert len(fam.tasks) == WINDOW  # every task is closed: the window's worth is kept
    assert set(engine.book.specs) == set(fam.tasks) == set(engine.book.final)
    assert fam.folded_tasks == 1200 - WINDOW
    assert fam.labels > 2 * 1200  # counts still cover every label ever given
    small = size_without_samples(engine)
    longer, _ = run(WINDOW, tasks=3600)
    assert size_without_samples(longer) < 1.1 * small  # three times the tasks


def size_without_samples(engine: AdaptiveEngine) -> int:
    """The snapshot's size but for the calibration samples (one per gold task, bounded apart by
    `calibration_samples`: test_the_calibration_keeps_the_most_recent_samples)."""
    data = engine.snapshot()
    for fam in data["families"].values():
        fam["samples"] = []
    return len(orjson.dumps(data))


def test_the_calibration_keeps_the_most_recent_samples() -> None:
    engine = AdaptiveEngine(AdaptiveParams(window=WINDOW, calibration_samples=30))
    crowd = Crowd(random.Random(11), good=8, spammers=2)
    crowd.run(engine, tasks=1200, refresh_every=100)
    (fam,) = engine.families.values()
    kept = list(fam.samples)
    engine.refresh()
    assert fam.samples == kept[-30:]


def test_folding_loses_no_evidence() -> None:
    """Every label on a non-gold task is one soft count, folded or in the window."""
    engine, crowd = run(WINDOW)
    (fam,) = engine.families.values()
    gold_tasks = {t for t, w, lab, spec in crowd.stream if spec is not None and spec.gold is not None}
    plain = sum(1 for t, w, lab, spec in crowd.stream if w and t not in gold_tasks)
    soft = sum(sum(map(sum, s.soft)) for s in fam.workers.values())
    assert abs(soft - plain) < 1e-6
    assert abs(sum(fam.folded_classes) - fam.folded_tasks) < 1e-6  # one class posterior each


def test_a_windowed_engine_learns_and_decides_as_one_that_keeps_everything() -> None:
    windowed, _ = run(WINDOW)
    full, _ = run(100_000)
    assert not full.families[next(iter(full.families))].folded_tasks
    assert {r.worker: r.banned for r in windowed.report()} == {r.worker: r.banned for r in full.report()}
    for a, b in zip(windowed.report(), full.report(), strict=True):
        assert abs(a.estimated_accuracy - b.estimated_accuracy) < 0.03, a.worker
    # Accuracy against the truth, over a few crowds: within a point of the engine that keeps all.
    for seed in (11, 21, 31):
        (_, w), (_, f) = run(WINDOW, seed=seed), run(100_000, seed=seed)
        assert w.accuracy() >= f.accuracy() - 0.01, seed
        assert w.accuracy() > 0.9


def test_a_folded_engine_restored_decides_exactly_as_the_live_one() -> None:
    engine, _ = run(WINDOW)
    restored = AdaptiveEngine.restore(json.loads(json.dumps(engine.snapshot())))
    assert restored.snapshot() == engine.snapshot()
    again = Crowd(random.Random(12), good=8, spammers=2, contrarians=1)
    assert again.run(engine, tasks=300, refresh_every=100, start=1200) == again.replay(restored)
    assert restored.snapshot() == engine.snapshot()


def as_version_1(snapshot: dict[str, Any], states: dict[str, Any]) -> dict[str, Any]:
    """What a core from before the fold saved: no version, no fold sums, and (whole
    snapshots) the posterior state of decided tasks too."""
    old = json.loads(json.dumps(snapshot))
    del old["version"]
    old["params"].pop("window")
    old["params"].pop("calibration_samples")
    for fam in old["families"].values():
        for key in ("folded_classes", "rest", "folded_tasks"):
            del fam[key]
        for stats in fam["workers"].values():
            del stats["folded"], stats["folded_held"]
    old["tasks"] = {**states, **old["tasks"]}
    return old


def test_a_snapshot_from_before_the_fold_restores_and_its_next_refresh_folds() -> None:
    engine = AdaptiveEngine(AdaptiveParams(window=100_000))
    crowd = Crowd(random.Random(13), good=8, spammers=2)
    crowd.run(engine, tasks=400, refresh_every=100)
    decided = {t: {"log_post": [0.0, 0.0], "epoch": 0, "counted": []} for t in engine.book.final}
    old = as_version_1(engine.snapshot(), decided)
    restored = AdaptiveEngine.restore(old)
    assert restored.params.window == AdaptiveParams().window  # the default, as the old core had none
    assert not set(restored.tasks) & set(restored.book.final)
    again = Crowd(random.Random(14), good=8, spammers=2)
    assert again.run(engine, tasks=50, refresh_every=1000, start=400) == again.replay(restored)
    restored.params = AdaptiveParams(window=WINDOW)
    restored.refresh()
    (fam,) = restored.families.values()
    assert len(fam.tasks) == WINDOW and fam.folded_tasks == 450 - WINDOW
