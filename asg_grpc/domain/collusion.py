"""Collusion: workers whose agreement is too high to be independent evidence.

Two honest workers agree about as often as their accuracies predict. `PairTally` counts, for
every pair that labelled the same task, how often they gave the same label. `rings` compares
that with what each worker's accuracy *against the rest* predicts (agreement with the plurality
of the other labels on the task, or with gold where there is gold): a pair is flagged when its
excess agreement is large (≥ `MIN_EXCESS`) and improbable (Chernoff bound below
`MAX_PROBABILITY`). Flagged pairs are joined into rings (union-find); within a ring only the
first label on a task counts as evidence, the others are kept but weigh nothing.

A ring of r workers is proven faster as a whole than pair by pair: its r(r-1)/2 pairs share
many more tasks than any one of them, long before any one pair has enough. The tally keeps the
tasks in two halves (by a hash of the task id) so that a group can be *chosen* on one half and
*tested* on the other: choosing and testing on the same counts would let any handful of honest
workers who happen to agree pass as a ring. On the choosing half, pairs that agree at least
`MIN_EXCESS` above prediction link workers into candidate groups; the member whose pooled
agreement with the rest of its group is least surprising is removed, one at a time, until each
agrees improbably (`SCREEN_PROBABILITY`) with the rest. On the testing half, members whose
agreement with the rest of the group fails that screen are dropped, and what is left is a ring
when the pooled agreement of all its pairs passes `MIN_EXCESS` and `MAX_PROBABILITY`, the test
of a single pair. Both halves take both roles.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

MIN_PAIR_TASKS = 8
MIN_EXCESS = 0.2
MAX_PROBABILITY = 1e-6
MIN_LINK_TASKS = 1
SCREEN_PROBABILITY = 1e-2

Pairs = dict[tuple[str, str], tuple[int, int, float]]  # (tasks, agreements, expected agreements)


def half(task_id: str) -> int:
    """The half of the tally a task's pairs go to: a stable hash (not Python's salted one)."""
    return zlib.crc32(task_id.encode()) & 1


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
    """Per unordered worker pair: co-labelled tasks and agreements, then the same of the tasks
    in half 1 (half 0 is the difference), updated on the hot path. Snapshots from before the
    halves ([tasks, agreements]) read as all in half 0."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    @staticmethod
    def key(a: str, b: str) -> str:
        return f"{a}\x1f{b}" if a < b else f"{b}\x1f{a}"

    def add(self, worker: str, label: str, others: Iterable[tuple[str, str]], part: int = 0) -> None:
        counts = self.counts
        for other, their in others:
            key = f"{worker}\x1f{other}" if worker < other else f"{other}\x1f{worker}"  # self.key
            c = counts.get(key)
            if c is None:
                c = counts[key] = [0, 0, 0, 0]
            elif len(c) == 2:
                c += [0, 0]
            same = label == their
            c[0] += 1
            c[1] += same
            if part:
                c[2] += 1
                c[3] += same

    def rings(self, accuracy: dict[str, float], classes: int) -> dict[str, str]:
        """Worker → ring id (the ring's smallest worker id) for workers in a flagged pair or a
        flagged candidate ring."""
        parent: dict[str, str] = {}
        halves: tuple[Pairs, Pairs] = ({}, {})

        def find(links: dict[str, str], w: str) -> str:
            while links.setdefault(w, w) != w:
                links[w] = links[links[w]]
                w = links[w]
            return w

        def join(links: dict[str, str], a: str, b: str) -> None:
            ra, rb = find(links, a), find(links, b)
            if ra != rb:
                links[max(ra, rb)] = min(ra, rb)

        for key, c in self.counts.items():
            n, agree = c[0], c[1]
            n1, agree1 = (c[2], c[3]) if len(c) == 4 else (0, 0)
            a, b = key.split("\x1f")
            qa, qb = accuracy.get(a), accuracy.get(b)
            if qa is None or qb is None:
                continue
            expected = qa * qb + (1 - qa) * (1 - qb) / (classes - 1)
            if n >= MIN_PAIR_TASKS and _improbable(n, agree, n * expected, MAX_PROBABILITY):
                join(parent, a, b)
            for part, (m, same) in enumerate(((n - n1, agree - agree1), (n1, agree1))):
                if m:
                    halves[part][(a, b)] = (m, same, m * expected)
        for choose, test in (halves, halves[::-1]):
            linked: dict[str, str] = {}
            for (a, b), (m, same, expected) in choose.items():
                if m >= MIN_LINK_TASKS and (same - expected) / m >= MIN_EXCESS:
                    join(linked, a, b)
            candidates: dict[str, list[str]] = {}
            for w in list(linked):
                candidates.setdefault(find(linked, w), []).append(w)
            for members in candidates.values():
                ring = _confirmed(_chosen(members, choose), test)
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


def _surprise(n: float, agree: float, expected: float) -> float:
    """Signed Chernoff exponent: how improbable the agreement is under independence (< 0 when
    the agreement is below prediction)."""
    if not n:
        return 0.0
    rate, base = agree / n, expected / n
    return n * _kl(rate, base) * (1 if rate > base else -1)


Neighbours = dict[str, list[tuple[str, tuple[int, int, float]]]]


def _sums(members: set[str], pairs: Pairs) -> tuple[dict[str, list[float]], Neighbours]:
    """Each member's (tasks, agreements, expected) summed over its pairs with other members."""
    sums = {w: [0.0, 0.0, 0.0] for w in members}
    neighbours: Neighbours = {w: [] for w in members}
    for (a, b), c in pairs.items():
        if a in members and b in members:
            for w, other in ((a, b), (b, a)):
                t = sums[w]
                t[0], t[1], t[2] = t[0] + c[0], t[1] + c[1], t[2] + c[2]
                neighbours[w].append((other, c))
    return sums, neighbours


def _chosen(members: list[str], pairs: Pairs) -> set[str]:
    """Drop the least surprising member until each agrees improbably with the rest. Sums and
    scores are updated as members leave, only for the leaver's neighbours: O(pairs + members
    × (neighbours + members)) instead of a score per member per step."""
    ring = set(members)
    sums, neighbours = _sums(ring, pairs)
    scores = {w: (_surprise(*sums[w]), w) for w in ring}
    while len(ring) > 1:
        weakest = min(scores.values())[1]
        n, agree, expected = sums[weakest]
        if n and _improbable(int(n), agree, expected, SCREEN_PROBABILITY):
            break
        ring.discard(weakest)
        del scores[weakest]
        for other, c in neighbours[weakest]:
            if other in ring:
                t = sums[other]
                t[0], t[1], t[2] = t[0] - c[0], t[1] - c[1], t[2] - c[2]
                scores[other] = (_surprise(*t), other)
    return ring if len(ring) > 1 else set()


def _confirmed(chosen: set[str], pairs: Pairs) -> list[str]:
    """The chosen group tested on counts it was not chosen on: its members that agree
    improbably with the rest there, if all their pairs pooled pass the test of one pair."""
    sums, _ = _sums(chosen, pairs)
    ring = {w for w in chosen if sums[w][0] and _improbable(int(sums[w][0]), sums[w][1], sums[w][2],
                                                            SCREEN_PROBABILITY)}
    if len(ring) < 2:
        return []
    sums, _ = _sums(ring, pairs)
    n = round(sum(sums[w][0] for w in ring) / 2)
    agree = sum(sums[w][1] for w in ring) / 2
    expected = sum(sums[w][2] for w in ring) / 2
    return sorted(ring) if n and _improbable(n, agree, expected, MAX_PROBABILITY) else []
