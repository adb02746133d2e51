"""Platt scaling of the engine's posterior, fitted on gold tasks.

The Dawid-Skene posterior assumes workers err independently and that their estimated confusion
matrices are exact; neither holds, so raw posteriors run overconfident. Each gold task tells, at
every label from its `min_labels`-th on, what the engine would have said (its leading option's
raw posterior) and whether that was right. `PlattCalibrator.fit` maps logit(raw) through
a·x + b fitted by maximum a posteriori with a Gaussian prior centred on the identity (a=1, b=0)
of precision `PRIOR_WEIGHT`: with no gold the confidence *is* the raw posterior, and the
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

    def fit(self, samples: list[tuple[float, bool]], iterations: int = 20) -> None:
        """Damped Newton steps on the penalised log loss, warm-started from the current map."""
        if not samples:
            self.a, self.b = 1.0, 0.0
            return
        xs = [logit(r) for r, _ in samples]
        ys = [ok for _, ok in samples]

        def loss(a: float, b: float) -> float:
            total = 0.5 * PRIOR_WEIGHT * ((a - 1) ** 2 + b * b)
            for x, y in zip(xs, ys, strict=True):
                z = (a * x + b) * (1 if y else -1)  # log loss = softplus(-z)
                total += math.log1p(math.exp(-abs(z))) + max(-z, 0.0)
            return total

        a, b = self.a, self.b
        current = loss(a, b)
        for _ in range(iterations):
            ga, gb = PRIOR_WEIGHT * (a - 1), PRIOR_WEIGHT * b
            haa, hab, hbb = PRIOR_WEIGHT, 0.0, PRIOR_WEIGHT
            for x, y in zip(xs, ys, strict=True):
                p = sigmoid(a * x + b)
                d, w = p - y, p * (1 - p)
                ga, gb = ga + d * x, gb + d
                haa, hab, hbb = haa + w * x * x, hab + w * x, hbb + w
            det = haa * hbb - hab * hab
            da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
            step = 1.0
            while step > 1e-4 and (trial := loss(a - step * da, b - step * db)) > current:
                step /= 2
            if step <= 1e-4 or current - trial < 1e-10:
                break
            a, b, current = a - step * da, b - step * db, trial
        self.a, self.b = a, b
