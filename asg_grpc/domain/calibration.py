"""Platt scaling of the engine's posterior, fitted on gold tasks.

The Dawid-Skene posterior assumes workers err independently and that their estimated confusion
matrices are exact; neither holds, so raw posteriors run overconfident. Each gold task tells, at
every label from its `min_labels`-th on, what the engine would have said (its leading option's
raw posterior) and whether that was right. `PlattCalibrator.fit` maps logit(raw) through
a·x + b fitted by maximum a posteriori with a Gaussian prior centred on the identity (a=1, b=0)
worth `PRIOR_WEIGHT` observations: with no gold the confidence *is* the raw posterior, and the
map moves off it only as gold accumulates (refitted at every refresh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRIOR_WEIGHT = 5.0
_EPS = 1e-9


def logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


@dataclass(slots=True)
class PlattCalibrator:
    a: float = 1.0
    b: float = 0.0

    def __call__(self, raw: float) -> float:
        return sigmoid(self.a * logit(raw) + self.b)

    def fit(self, samples: list[tuple[float, bool]], iterations: int = 8) -> None:
        """Newton steps on the penalised log loss; warm-started from the current map."""
        if not samples:
            self.a, self.b = 1.0, 0.0
            return
        xs = [logit(r) for r, _ in samples]
        ys = [1.0 if ok else 0.0 for _, ok in samples]
        lam = PRIOR_WEIGHT
        a, b = self.a, self.b
        for _ in range(iterations):
            ga, gb = lam * (a - 1), lam * b
            haa, hab, hbb = lam, 0.0, lam
            for x, y in zip(xs, ys, strict=True):
                p = sigmoid(a * x + b)
                d = p - y
                w = max(p * (1 - p), 1e-6)
                ga += d * x
                gb += d
                haa += w * x * x
                hab += w * x
                hbb += w
            det = haa * hbb - hab * hab
            if det <= 0:
                break
            a -= (hbb * ga - hab * gb) / det
            b -= (haa * gb - hab * ga) / det
        self.a, self.b = a, b
