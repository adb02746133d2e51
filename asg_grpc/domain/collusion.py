"""Collusion: workers whose agreement is too high to be independent evidence.

Two honest workers agree about as often as their accuracies predict. `PairTally` counts, for
every pair that labelled the same task, how often they gave the same label. `rings` compares
that with what each worker's accuracy *against the rest* predicts (agreement with the plurality
of the other labels on the task, or with gold where there is gold): a pair is flagged when its
excess agreement is large (≥ `MIN_EXCESS`) and improbable (Chernoff bound below
`MAX_PROBABILITY`). Flagged pairs are joined into rings (union-find); within a ring only the
first label on a task counts as evidence, the others are kept but weigh nothing.

A ring of r workers is proven faster as a whole than pair by pair: its r(r-1)/2 pairs share
many more tasks than any one of them. Pairs that pass a loose screen (`SCREEN_PROBABILITY`,
from `MIN_SCREEN_TASKS` shared tasks) are joined into candidate rings, and a candidate is
flagged when the pooled agreement of *all* its pairs (not only the screened ones, so an honest
worker joined by one lucky pair dilutes it) passes the same excess and `MAX_PROBABILITY` as a
single pair. Members whose own pooled agreement with the rest of the ring does not pass the
screen are left out of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MIN_PAIR_TASKS = 8
MIN_EXCESS = 0.2
MAX_PROBABILITY = 1e-6
MIN_SCREEN_TASKS = 5
SCREEN_PROBABILITY = 1e-2

Pairs = dict[tuple[str, str], tuple[int, int, float]]  # (tasks, agreements, expected agreements)


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
        """Worker → ring id (the ring's smallest worker id) for workers in a flagged pair or a
        flagged candidate ring."""
        parent: dict[str, str] = {}
        screened: dict[str, str] = {}
        pairs: Pairs = {}

        def find(links: dict[str, str], w: str) -> str:
            while links.setdefault(w, w) != w:
                links[w] = links[links[w]]
                w = links[w]
            return w

        def join(links: dict[str, str], a: str, b: str) -> None:
            ra, rb = find(links, a), find(links, b)
            if ra != rb:
                links[max(ra, rb)] = min(ra, rb)

        for key, (n, agree) in self.counts.items():
            if n < MIN_SCREEN_TASKS:
                continue
            a, b = key.split("\x1f")
            qa, qb = accuracy.get(a), accuracy.get(b)
            if qa is None or qb is None:
                continue
            expected = qa * qb + (1 - qa) * (1 - qb) / (classes - 1)
            pairs[(a, b)] = (n, agree, n * expected)
            if n >= MIN_PAIR_TASKS and _improbable(n, agree, n * expected, MAX_PROBABILITY):
                join(parent, a, b)
            if _improbable(n, agree, n * expected, SCREEN_PROBABILITY):
                join(screened, a, b)
        candidates: dict[str, list[str]] = {}
        for w in list(screened):
            candidates.setdefault(find(screened, w), []).append(w)
        for members in candidates.values():
            for ring in _pooled_rings(sorted(members), pairs):
                for w in ring[1:]:
                    join(parent, ring[0], w)
        roots = {w: find(parent, w) for w in parent}
        sizes: dict[str, int] = {}
        for r in roots.values():
            sizes[r] = sizes.get(r, 0) + 1
        return {w: r for w, r in roots.items() if sizes[r] > 1}


def _improbable(n: int, agree: float, expected: float, probability: float) -> bool:
    """Agreement at least `MIN_EXCESS` above what independence predicts, and less likely than
    `probability` under it (Chernoff bound)."""
    rate, base = agree / n, expected / n
    return rate - base >= MIN_EXCESS and n * _kl(rate, base) > -math.log(probability)


def _pooled(members: list[str], pairs: Pairs,
            worker: str | None = None) -> tuple[int, int, float]:
    """Summed (tasks, agreements, expected agreements) over the pairs among `members` (only
    those with `worker` when given)."""
    n = agree = 0
    expected = 0.0
    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            if worker is not None and worker not in (a, b):
                continue
            c = pairs.get((a, b) if a < b else (b, a))
            if c is not None:
                n, agree, expected = n + c[0], agree + c[1], expected + c[2]
    return n, agree, expected


def _pooled_rings(members: list[str], pairs: Pairs) -> list[list[str]]:
    """The candidate ring, without the members that do not agree improbably with the rest of
    it, if the pooled agreement of all its pairs proves it; else nothing."""
    ring = list(members)
    while len(ring) > 1:
        weak = [w for w in ring if not (
            (c := _pooled(ring, pairs, w))[0] and _improbable(*c, SCREEN_PROBABILITY))]
        if not weak:
            break
        ring = [w for w in ring if w not in weak]
    total = _pooled(ring, pairs)
    return [ring] if len(ring) > 1 and total[0] and _improbable(*total, MAX_PROBABILITY) else []
