"""Collusion: workers whose agreement is too high to be independent evidence.

Two honest workers agree about as often as their accuracies predict. `PairTally` counts, for
every pair that labelled the same task, how often they gave the same label. `rings` compares
that with what each worker's accuracy *against the rest* predicts (agreement with the plurality
of the other labels on the task, or with gold where there is gold): a pair is flagged when its
excess agreement is large (≥ `MIN_EXCESS`) and improbable (Chernoff bound below
`MAX_PROBABILITY`). Flagged pairs are joined into rings (union-find); within a ring only the
first label on a task counts as evidence, the others are kept but weigh nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MIN_PAIR_TASKS = 8
MIN_EXCESS = 0.2
MAX_PROBABILITY = 1e-6


def _kl(p: float, q: float) -> float:
    """Bernoulli KL divergence, the exponent of the Chernoff bound P(rate ≥ p | q)."""
    q = min(max(q, 1e-9), 1 - 1e-9)
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


class PairTally:
    """Co-labelled tasks and agreements per unordered worker pair, updated on the hot path."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    @staticmethod
    def key(a: str, b: str) -> str:
        return f"{a}\x1f{b}" if a < b else f"{b}\x1f{a}"

    def add(self, worker: str, label: str, others: Iterable[tuple[str, str]]) -> None:
        for other, their in others:
            c = self.counts.setdefault(self.key(worker, other), [0, 0])
            c[0] += 1
            c[1] += label == their

    def rings(self, accuracy: dict[str, float], classes: int) -> dict[str, str]:
        """Worker → ring id (the ring's smallest worker id) for workers in a flagged pair."""
        parent: dict[str, str] = {}

        def find(w: str) -> str:
            while parent.setdefault(w, w) != w:
                parent[w] = parent[parent[w]]
                w = parent[w]
            return w

        for key, (n, agree) in self.counts.items():
            if n < MIN_PAIR_TASKS:
                continue
            a, b = key.split("\x1f")
            qa, qb = accuracy.get(a), accuracy.get(b)
            if qa is None or qb is None:
                continue
            expected = qa * qb + (1 - qa) * (1 - qb) / (classes - 1)
            rate = agree / n
            if rate - expected >= MIN_EXCESS and n * _kl(rate, expected) > -math.log(MAX_PROBABILITY):
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        roots = {w: find(w) for w in parent}
        sizes: dict[str, int] = {}
        for r in roots.values():
            sizes[r] = sizes.get(r, 0) + 1
        return {w: r for w, r in roots.items() if sizes[r] > 1}
