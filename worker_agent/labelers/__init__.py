"""Labelers: the part of the agent that decides. See `base` for the protocol."""

from __future__ import annotations

from worker_agent.labelers import truth
from worker_agent.labelers.base import Answer, Decision, Labeler, Skip
from worker_agent.labelers.interactive import InteractiveLabeler
from worker_agent.labelers.simulated import SimulatedLabeler
from worker_agent.labelers.web import WebLabeler
from worker_agent.settings import WorkerSettings

__all__ = [
    "Answer",
    "Decision",
    "InteractiveLabeler",
    "Labeler",
    "SimulatedLabeler",
    "Skip",
    "WebLabeler",
    "create",
]


def create(settings: WorkerSettings) -> Labeler:
    """The labeler `settings.labeler` names; reads the truth file now, so errors come before connecting."""
    if settings.labeler == "interactive":
        return InteractiveLabeler(answer_timeout=settings.answer_timeout)
    if settings.labeler == "web":
        return WebLabeler(port=settings.web_port, answer_timeout=settings.answer_timeout)
    return SimulatedLabeler(
        truth=truth.load(settings.truth) if settings.truth else None,
        accuracy=settings.accuracy,
        always=settings.always,
        seed=settings.seed,
        delay=settings.delay,
    )
