"""Platt scaling of the engine's posterior, fitted on gold tasks.

The Dawid-Skene posterior assumes workers err independently and that their estimated confusion
matrices are exact; neither holds, so raw posteriors run overconfident. Each gold task tells, at
every label from its `min_labels`-th on, what the engine would have said (its leading option's
raw posterior) and whether that was right. `PlattCalibrator.fit` maps logit(raw) through
a·x + b fitted by maximum a posteriori with a Gaussian prior centred on the identity (a=1, b=0)
of precision `PRIOR_WEIGHT`, refitted at every refresh.

The reported confidence is the map's *posterior predictive*, not its point estimate: the
Laplace approximation gives (a, b) a covariance (the inverse Hessian of the penalised loss),
and `sigmoid(μ / sqrt(1 + π·σ²/8))` (MacKay's moderated output) averages the sigmoid over it.
While gold is scarce the map is uncertain and a raw posterior far from ½ — where an error in
the slope matters most — is pulled toward ½; as gold accumulates σ² shrinks and the
confidence tends to the fitted map. Raw posteriors from correlated errors run overconfident, so
uncertainty about the map is resolved toward the honest side rather than the identity.
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
    """The map and its covariance (`saa`, `sab`, `sbb`; the prior's until the first fit, so a
    snapshot written before the covariance existed restores to the prior's)."""

    a: float = 1.0
    b: float = 0.0
    saa: float = 1 / PRIOR_WEIGHT
    sab: float = 0.0
    sbb: float = 1 / PRIOR_WEIGHT

    def __call__(self, raw: float) -> float:
        x = logit(raw)
        var = self.saa * x * x + 2 * self.sab * x + self.sbb
        return sigmoid((self.a * x + self.b) / math.sqrt(1 + math.pi * var / 8))

    def fit(self, samples: list[tuple[float, bool]], iterations: int = 20) -> None:
        """Damped Newton steps on the penalised log loss, warm-started from the current map."""
        if not samples:
            self.a, self.b = 1.0, 0.0
            self.saa, self.sab, self.sbb = 1 / PRIOR_WEIGHT, 0.0, 1 / PRIOR_WEIGHT
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
        self._covariance(xs)

    def _covariance(self, xs: list[float]) -> None:
        """Inverse Hessian of the penalised loss at the fitted map (Laplace approximation)."""
        haa, hab, hbb = PRIOR_WEIGHT, 0.0, PRIOR_WEIGHT
        for x in xs:
            p = sigmoid(self.a * x + self.b)
            w = p * (1 - p)
            haa, hab, hbb = haa + w * x * x, hab + w * x, hbb + w
        det = haa * hbb - hab * hab
        self.saa, self.sab, self.sbb = hbb / det, -hab / det, haa / det
