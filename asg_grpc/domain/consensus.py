"""The consensus rule (DESIGN "Task lifecycle"), exact and documented.

A task needs `threshold` labels from distinct workers. When it has them, the option chosen by
more than half of the labels wins, with confidence = agreement / labels. Without a strict
majority one more label is requested at a time, up to twice the threshold; still none at that
cap and the task fails with `no_consensus`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decided:
    label: str
    worker_count: int
    agreement_count: int
    # `adaptive`: the engine's calibrated probability that `label` is right (docs/quality.md).
    calibrated: float | None = None

    @property
    def confidence(self) -> float:
        if self.calibrated is not None:
            return self.calibrated
        return self.agreement_count / self.worker_count


@dataclass(frozen=True, slots=True)
class NeedMore:
    """No strict majority yet: collect labels until there are `target`."""

    target: int


NO_CONSENSUS = "no_consensus"


@dataclass(frozen=True, slots=True)
class NoConsensus:
    worker_count: int
    # The task's `failure_reason`: `no_consensus`, or why it could get no more labels
    # (`no_challenge_gateway`: dispatch/labor.py).
    reason: str = NO_CONSENSUS


Outcome = Decided | NeedMore | NoConsensus


def max_labels(threshold: int) -> int:
    return 2 * threshold


def evaluate(labels: Iterable[str], threshold: int) -> Outcome:
    """Decide from the labels collected so far (one per distinct worker)."""
    counts = Counter(labels)
    total = sum(counts.values())
    if total < threshold:
        return NeedMore(threshold)
    label, agreeing = counts.most_common(1)[0]
    if 2 * agreeing > total:
        return Decided(label, total, agreeing)
    if total >= max_labels(threshold):
        return NoConsensus(total)
    return NeedMore(total + 1)
