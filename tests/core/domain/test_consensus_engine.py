"""The engine interface: `majority` is the published rule label for label, and the `adaptive`
engine's stopping rules (target confidence, min and max labels, running out of workers)."""

from __future__ import annotations

import json
import random

import pytest

from asg_grpc.domain import consensus
from asg_grpc.domain.calibration import PlattCalibrator
from asg_grpc.domain.consensus_engine import (
    ConsensusSpec,
    Decision,
    GiveUp,
    MajorityEngine,
    NeedOne,
    Verdict,
)
from asg_grpc.domain.dawid_skene import AdaptiveEngine
from asg_grpc.domain.errors import Conflict, ValidationError

AB = ("a", "b")


def published(labels: list[str], threshold: int) -> Verdict:
    outcome = consensus.evaluate(labels, threshold)
    if isinstance(outcome, consensus.Decided):
        return Decision(outcome.label, outcome.worker_count, outcome.agreement_count, outcome.confidence)
    if isinstance(outcome, consensus.NoConsensus):
        return GiveUp(outcome.worker_count)
    return NeedOne()


@pytest.mark.parametrize("threshold", [2, 3, 5])
def test_majority_engine_gives_the_published_rule_at_every_label(threshold: int) -> None:
    rng = random.Random(threshold)
    engine = MajorityEngine()
    for n in range(300):
        options = ("a", "b", "c")[: rng.choice((2, 3))]
        engine.open(f"t{n}", ConsensusSpec(options, min_labels=threshold))
        labels: list[str] = []
        verdict: Verdict = NeedOne()
        while isinstance(verdict, NeedOne):
            labels.append(rng.choice(options))
            verdict = engine.add_label(f"t{n}", f"w{len(labels)}", labels[-1])
            assert verdict == published(labels, threshold)
        assert engine.close(f"t{n}") == verdict  # final stays final


def test_majority_engine_gives_up_when_workers_run_out() -> None:
    engine = MajorityEngine()
    engine.open("t", ConsensusSpec(AB, min_labels=3))
    assert engine.add_label("t", "w1", "a") == NeedOne()
    assert engine.close("t") == GiveUp(1)


def test_a_worker_labels_a_task_once_and_only_with_its_options() -> None:
    for engine in (MajorityEngine(), AdaptiveEngine()):
        engine.open("t", ConsensusSpec(AB, min_labels=2))
        engine.add_label("t", "w1", "a")
        with pytest.raises(Conflict):
            engine.add_label("t", "w1", "b")
        with pytest.raises(ValidationError):
            engine.add_label("t", "w2", "c")


def test_spec_refuses_a_minimum_below_two() -> None:
    with pytest.raises(ValidationError, match="consensus_threshold"):
        ConsensusSpec(AB, min_labels=1)


def labels_until_final(engine: AdaptiveEngine, task: str, spec: ConsensusSpec, label: str) -> Verdict:
    engine.open(task, spec)
    verdict: Verdict = NeedOne()
    n = 0
    while isinstance(verdict, NeedOne):
        n += 1
        verdict = engine.add_label(task, f"{task}-w{n}", label)
    return verdict


def test_adaptive_stops_once_the_target_confidence_is_reached() -> None:
    # Unknown workers are 70 % right a priori: 4 agreeing labels give 0.967, 3 give 0.927.
    # Without gold the reported confidence is that posterior humbled by the calibration's doubt.
    verdict = labels_until_final(AdaptiveEngine(), "t", ConsensusSpec(AB, min_labels=2), "a")
    assert isinstance(verdict, Decision) and verdict.reached_target
    assert (verdict.label, verdict.worker_count, verdict.agreement_count) == ("a", 4, 4)
    assert verdict.confidence == pytest.approx(PlattCalibrator()(0.967), abs=2e-3)
    assert 0.85 < verdict.confidence < 0.967
    stricter = labels_until_final(AdaptiveEngine(), "t", ConsensusSpec(AB, 2, target_confidence=0.99), "a")
    assert isinstance(stricter, Decision) and stricter.worker_count > 4
    assert stricter.confidence > verdict.confidence


def test_adaptive_never_decides_below_the_minimum_number_of_labels() -> None:
    engine = AdaptiveEngine()
    verdict = labels_until_final(engine, "t", ConsensusSpec(AB, min_labels=6), "a")
    assert isinstance(verdict, Decision) and verdict.worker_count == 6


def test_adaptive_stops_at_max_labels_below_target() -> None:
    engine = AdaptiveEngine()
    engine.open("t", ConsensusSpec(AB, min_labels=2, max_labels=4))
    verdicts = [engine.add_label("t", f"w{n}", "ab"[n % 2]) for n in range(4)]
    assert verdicts[:3] == [NeedOne()] * 3
    final = verdicts[3]
    assert isinstance(final, Decision) and not final.reached_target
    assert final.worker_count == 4 and final.confidence < 0.95


def test_adaptive_task_out_of_workers_stops() -> None:
    engine = AdaptiveEngine()
    engine.open("empty", ConsensusSpec(AB, min_labels=2))
    assert engine.close("empty") == GiveUp(0)
    engine.open("short", ConsensusSpec(AB, min_labels=3))
    engine.add_label("short", "w1", "b")
    final = engine.close("short")
    assert isinstance(final, Decision) and final.label == "b" and not final.reached_target
    assert engine.close("short") == final


def test_adaptive_snapshot_survives_json_and_decides_the_same() -> None:
    from tests.core.domain.crowd import Crowd

    crowd = Crowd(random.Random(7), good=8, spammers=1)
    engine = AdaptiveEngine()
    crowd.run(engine, tasks=150, refresh_every=100)
    restored = AdaptiveEngine.restore(json.loads(json.dumps(engine.snapshot())))
    assert restored.book.final == engine.book.final
    assert restored.snapshot() == engine.snapshot()
    again = Crowd(random.Random(8), good=8, spammers=1)
    assert again.run(engine, tasks=80, refresh_every=50, start=150) == again.replay(restored)
