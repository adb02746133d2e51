"""What `adaptive` learns about workers from a simulated crowd with known truth: spammers stop
counting, a consistently wrong worker is read backwards, rings count once, confidence is
recalibrated on gold."""

from __future__ import annotations

import random

import pytest

from asg_grpc.domain.calibration import PlattCalibrator
from asg_grpc.domain.collusion import PairTally
from asg_grpc.domain.consensus_engine import ConsensusSpec, Decision, GiveUp
from asg_grpc.domain.dawid_skene import AdaptiveEngine
from asg_grpc.domain.errors import NotFound
from asg_grpc.domain.worker_model import log_confusion
from tests.core.domain.crowd import OPTIONS, Crowd


def trained(seed: int, good: int = 8, spammers: int = 0, contrarians: int = 0) -> AdaptiveEngine:
    engine = AdaptiveEngine()
    crowd = Crowd(random.Random(seed), good=good, spammers=spammers, contrarians=contrarians)
    crowd.run(engine, tasks=300, refresh_every=50)
    engine.refresh()
    return engine


def weight(engine: AdaptiveEngine, worker: str) -> float:
    """How far one label of `worker` moves the log-odds, at most (0 for a spammer)."""
    fam = next(iter(engine.families.values()))
    table = log_confusion(fam.pooled, fam.workers[worker], engine.params.prior_strength)
    return max(abs(table[0][j] - table[1][j]) for j in range(2))


def test_spammers_are_down_weighted_and_mostly_banned_good_workers_never() -> None:
    spec = ConsensusSpec(OPTIONS, min_labels=2)
    banned = 0
    for seed in range(10):
        engine = trained(seed, good=8, spammers=2)
        assert all(engine.eligible(f"good{n}", spec) for n in range(8))
        banned += sum(not engine.eligible(f"spam{n}", spec) for n in range(2))
        good = min(weight(engine, f"good{n}") for n in range(8))
        assert max(weight(engine, f"spam{n}") for n in range(2)) < good / 2
    assert banned >= 16  # of 20: a ban needs evidence, a lucky spammer can escape it a while


def test_a_banned_workers_labels_weigh_nothing() -> None:
    engine = trained(1, good=8, spammers=2)
    spec = ConsensusSpec(OPTIONS, min_labels=2)
    banned = [w for w in ("spam0", "spam1") if not engine.eligible(w, spec)]
    assert banned
    engine.open("t", spec)
    for worker in banned:
        engine.add_label("t", worker, "b")
    assert engine.close("t") == GiveUp(len(banned))  # no counted label: nothing to decide from


def test_an_operator_reinstates_a_banned_worker() -> None:
    engine = trained(1, good=8, spammers=1)
    spec = ConsensusSpec(OPTIONS, min_labels=2)
    assert not engine.eligible("spam0", spec)
    engine.reinstate("spam0", spec.family_key)
    engine.refresh()
    assert engine.eligible("spam0", spec)
    with pytest.raises(NotFound):
        engine.reinstate("nobody", spec.family_key)


def test_a_below_chance_worker_is_negative_evidence() -> None:
    engine = trained(3, good=8, contrarians=1)
    spec = ConsensusSpec(OPTIONS, min_labels=2, max_labels=2)  # decide at 2, show the confidence
    assert engine.eligible("contra0", spec)  # informative, not a spammer
    verdicts = {}
    for first in ("contra0", "good1"):
        engine.open(first, spec)
        engine.add_label(first, first, "a")
        verdicts[first] = engine.add_label(first, "good0", "b")
    contra, good = verdicts["contra0"], verdicts["good1"]
    assert isinstance(contra, Decision) and isinstance(good, Decision)
    assert contra.label == "b" and contra.confidence > 0.9  # its "a" reads as a vote for "b"
    assert good.confidence < 0.7  # two good workers disagreeing: a coin toss


def test_good_workers_decide_early_and_mostly_right() -> None:
    rng = random.Random(4)
    crowd = Crowd(rng, good=8, spammers=2, contrarians=1)
    engine = AdaptiveEngine()
    crowd.run(engine, tasks=300, refresh_every=50)
    later = Crowd(random.Random(5), good=8, spammers=2, contrarians=1)
    verdicts = later.run(engine, tasks=200, refresh_every=50, start=300)
    decisions = [v for v in verdicts if isinstance(v, Decision)]
    assert len(decisions) == 200
    assert sum(v.worker_count for v in decisions) / 200 < 3.0


def test_a_ring_agreeing_far_above_its_accuracy_is_one_voice() -> None:
    tally = PairTally()
    rng = random.Random(6)
    for _ in range(40):
        shared = rng.choice("ab")
        truth = rng.choice("ab")
        tally.add("ring1", shared, [("ring0", shared)])
        tally.add("ring2", shared, [("ring0", shared), ("ring1", shared)])
        honest = [(f"h{n}", truth if rng.random() < 0.9 else "ab"[truth == "a"]) for n in range(2)]
        tally.add(honest[1][0], honest[1][1], [honest[0]])
    accuracy = {"ring0": 0.5, "ring1": 0.52, "ring2": 0.48, "h0": 0.9, "h1": 0.9}
    rings = tally.rings(accuracy, classes=2)
    assert rings == {"ring0": "ring0", "ring1": "ring0", "ring2": "ring0"}


def test_calibration_without_gold_is_humbler_than_the_raw_posterior_and_tempers_overconfidence() -> None:
    """No gold: the map is the identity but uncertain, so a confident raw posterior is
    reported lower (never below ½, ½ stays ½); gold that says 0.99 is right 80 % pulls it there."""
    calib = PlattCalibrator()
    calib.fit([])
    assert calib(0.5) == pytest.approx(0.5)
    assert 0.85 < calib(0.97) < 0.95
    assert calib(0.99) > calib(0.97) > calib(0.8) > 0.5
    overconfident = [(0.99, n % 5 != 0) for n in range(200)]  # said 0.99, right 80 %
    calib.fit(overconfident)
    assert 0.75 < calib(0.99) < 0.85


def test_calibration_tends_to_the_raw_posterior_as_honest_gold_accumulates() -> None:
    """Where the raw posterior is already right, more gold only takes the doubt away."""
    rng = random.Random(3)
    raws = [rng.uniform(0.6, 0.995) for _ in range(4000)]
    honest = [(r, rng.random() < r) for r in raws]
    gaps = []
    for n in (0, 40, 400, 4000):
        calib = PlattCalibrator()
        calib.fit(honest[:n])
        gaps.append(abs(calib(0.97) - 0.97))
    assert gaps[0] > 0.03 > 0.01 > max(gaps[1:])


def test_a_calibrator_saved_before_its_covariance_existed_restores_to_the_prior() -> None:
    old = PlattCalibrator(**{"a": 1.0, "b": 0.0})
    fresh = PlattCalibrator()
    fresh.fit([])
    assert old == fresh


def test_a_ring_is_proven_as_a_whole_before_any_one_pair_is() -> None:
    """Six colluders, each pair sharing about 10 tasks (half what one pair needs alone), and
    honest workers who agree as often as their accuracy says: the ring is found, nobody else."""
    tally = PairTally()
    rng = random.Random(7)
    ring = [f"c{n}" for n in range(6)]
    honest = [f"h{n}" for n in range(6)]
    for task in range(150):
        truth, shared = rng.choice("ab"), rng.choice("ab")
        members = rng.sample(ring, 2)
        labels = [(w, shared) for w in members]
        labels += [(w, truth if rng.random() < 0.8 else "ab"[truth == "a"]) for w in rng.sample(honest, 3)]
        for n, (worker, label) in enumerate(labels):
            tally.add(worker, label, labels[:n], task % 2)
    assert max(c[0] for key, c in tally.counts.items() if key.startswith("c") and "h" not in key) < 20
    accuracy = {**{w: 0.5 for w in ring}, **{w: 0.8 for w in honest}}
    rings = tally.rings(accuracy, classes=2)
    assert rings == {w: "c0" for w in ring}


def test_a_tally_from_before_the_halves_reads_as_half_zero_and_keeps_counting() -> None:
    """Snapshots older than the halves hold [tasks, agreements] per pair: they restore, count on
    and still prove a pair by its totals."""
    tally = PairTally()
    tally.counts = {PairTally.key("a", "b"): [30, 30]}
    tally.add("b", "x", [("a", "x")], part=1)
    assert tally.counts[PairTally.key("a", "b")] == [31, 31, 1, 1]
    assert tally.rings({"a": 0.5, "b": 0.5}, classes=2) == {"a": "a", "b": "a"}
