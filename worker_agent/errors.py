"""Errors of the worker agent; `main` maps each to an exit code once.

WorkerError
├── ConfigError        a flag, variable or truth file we cannot use (exit 2, before connecting)
├── AuthError          the core refused the token (exit 2: a bad token never becomes good)
├── StreamBroken       the stream failed or ended; the agent reconnects with backoff
└── LabelerExhausted   the labeler can answer no more (stdin closed); the agent drains
"""

from __future__ import annotations


class WorkerError(Exception):
    """Root of the agent's errors; the message is meant for the person running the agent."""


class ConfigError(WorkerError):
    pass


class AuthError(WorkerError):
    pass


class StreamBroken(WorkerError):
    """`retry_after`: seconds the core asked for before the next stream (its `retry-after`
    trailing metadata on RESOURCE_EXHAUSTED, e.g. over the labels-per-second limit); 0: none."""

    def __init__(self, message: str, code: str = "", retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class LabelerExhausted(WorkerError):
    pass
