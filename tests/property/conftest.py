"""Hypothesis for the property tests: bounded, so the folder runs in seconds on a slow machine,
with no example database written into the tree and no per-example deadline (two shared cores
make timings noisy; the bound on examples is what keeps the run short)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "asg",
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("asg")
