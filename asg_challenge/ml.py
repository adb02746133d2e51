"""The bot-risk model: session features, training (single-flight, in a worker thread, swapped in
atomically, persisted only as the gateway's own JSON file) and scoring.

Scoring runs on every request, so a trained Pipeline(StandardScaler, LogisticRegression) is
reduced to its numbers (means, scales, weights, intercept) and scored in plain Python: the same
probability as `predict_proba`, without sklearn's per-call overhead (docs/challenge.md)."""

from __future__ import annotations

import bisect
import json
import logging
import math
import operator
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asg_challenge.domain import clip_risk

if TYPE_CHECKING:
    from asg_challenge.gateway import Session

log = logging.getLogger("asg_challenge.ml")
MIN_LABELED = 20
SNAPSHOT_AT = frozenset((3, 5, 10, 20, 50, 100))  # a session's request counts kept as training rows
FEATURES = (
    "requests", "per_min_1m", "per_min_10m", "log_mean_gap", "log_std_gap", "burst_10s", "log_duration",
    "html_share", "non_get_share", "share_4xx", "unique_path_share",
    "header_risk", "header_count", "has_lang", "automation_ua", "cookie_back",
)  # fmt: skip


def features(s: Session) -> list[float]:
    """The session's feature row (volume and timing, request mix, headers) as of its last
    site request: windows end there, so a row taken while scoring and one taken later for
    training describe the same moment. Challenge outcomes are the labels, so they are left out
    here to not leak into the inputs. Gaps and duration are on a log scale: a bot's 5 ms and a
    reader's 0.5 s are two orders of magnitude apart, which a linear model then sees as such."""
    t = list(s.times)
    end = t[-1] if t else s.last_seen
    # Scored on every request: the gaps' mean telescopes and their spread is a sum of squares
    # taken in C (map/operator), not a Python loop per gap.
    n_gaps = len(t) - 1
    mean = (t[-1] - t[0]) / n_gaps if n_gaps > 0 else 0.0
    if n_gaps > 0:
        gaps = list(map(operator.sub, t[1:], t))
        std = math.sqrt(max(sum(map(operator.mul, gaps, gaps)) / n_gaps - mean * mean, 0.0))
    else:
        std = 0.0
    n = max(s.requests, 1)
    burst = _max_in_window(t, 10.0) if len(t) < 60 else s.recent(end, 10)
    return [
        float(s.requests), float(s.recent(end, 60)), s.recent(end, 600) / 10.0,
        math.log10(mean + 1e-3), math.log10(std + 1e-3), float(burst), math.log10(1.0 + end - s.first_seen),
        s.html / n, s.non_get / n, s.errors_4xx / n, len(s.paths) / n,
        s.header_score, float(s.header_count), float(s.has_lang), float(s.automation_ua),
        float(s.cookie_back),
    ]  # fmt: skip


def _max_in_window(t: list[float], window: float) -> int:
    """The most of the (arrival-ordered) times `t` that fall in any `window` seconds starting
    at one of them: one bisection per start, where counting from each start was O(n²)."""
    return max((bisect.bisect_right(t, x + window) - i for i, x in enumerate(t)), default=0)


def training_rows(s: Session) -> list[list[float]]:
    """A labeled session's rows: its features as they were at its SNAPSHOT_AT-th requests (what
    the scorer saw then) and at its end, so the model learns to judge short sessions too."""
    return [*s.snapshots, features(s)]


@dataclass(frozen=True)
class Linear:
    """A fitted scaler + logistic regression as plain numbers."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def risk(self, x: list[float]) -> float:
        z = self.intercept
        for xi, m, sc, c in zip(x, self.mean, self.scale, self.coef, strict=True):
            z += (xi - m) / sc * c
        z = max(min(z, 50.0), -50.0)
        return clip_risk(1.0 / (1.0 + math.exp(-z)))


def fit(rows: list[list[float]], labels: list[int]) -> Linear:
    """Fit the pipeline (the slow part; run it off the event loop)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(class_weight="balanced", max_iter=1000))]
    )
    pipe.fit(rows, labels)
    sc, clf = pipe.named_steps["scale"], pipe.named_steps["clf"]
    return Linear(
        tuple(float(v) for v in sc.mean_),
        tuple(float(v) if v else 1.0 for v in sc.scale_),
        tuple(float(v) for v in clf.coef_[0]),
        float(clf.intercept_[0]),
    )


class Trainer:
    """Single-flight training: a second `start` while one runs is a no-op."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "model.json"
        self.model: Linear | None = None
        self.last_trained: str | None = None
        self._running = threading.Lock()
        self._load()

    def _load(self) -> None:
        """Our own file, written by `_save`: plain numbers in JSON, so loading runs no code
        (unlike a pickled/joblib pipeline)."""
        if self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
                m = saved["model"]
                self.model = Linear(
                    tuple(m["mean"]), tuple(m["scale"]), tuple(m["coef"]), float(m["intercept"])
                )
                self.last_trained = saved["last_trained"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable model file %s: %s", self.path, exc)

    def _save(self, model: Linear, when: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"model": model.__dict__, "last_trained": when}, f)
        os.replace(tmp, self.path)

    def start(self, snapshot: list[tuple[list[float], int]]) -> bool:
        """Train on `snapshot` in a thread; False when a run is already going."""
        if not self._running.acquire(blocking=False):
            return False
        threading.Thread(target=self._run, args=(snapshot,), name="challenge-train", daemon=True).start()
        return True

    def _run(self, snapshot: list[tuple[list[float], int]]) -> None:
        try:
            labels = [y for _, y in snapshot]
            if len(snapshot) < MIN_LABELED or len(set(labels)) < 2:
                log.warning(
                    "not training: %d labeled sessions (%d bot), need %d with both classes",
                    len(snapshot),
                    sum(labels),
                    MIN_LABELED,
                )
                return
            model = fit([x for x, _ in snapshot], labels)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._save(model, when)
            self.model, self.last_trained = model, when  # the swap: one reference each
            log.info("bot-risk model trained on %d sessions", len(snapshot))
        except Exception:
            log.exception("training failed; the previous model stays")
        finally:
            self._running.release()

    def status(self, sessions_with_features: int) -> dict[str, Any]:
        return {
            "model_ready": self.model is not None,
            "sessions_with_features": sessions_with_features,
            "last_trained": self.last_trained,
        }
