"""Reconnect delays: capped exponential backoff with jitter, as a pure function.

Jitter spreads the agents out when a restarted core comes back, instead of all of them
reconnecting in the same instant; keeping at least half the ceiling stops one agent from
hammering a core that is still down.
"""

from __future__ import annotations

import random

BASE_SECONDS = 0.1
CAP_SECONDS = 5.0
_MAX_EXPONENT = 32  # 0.1 * 2**32 is far above any cap: no float overflow for long outages


def ceiling(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """The largest delay before reconnect attempt `attempt` (0 for the first retry)."""
    return min(cap, base * 2 ** min(max(attempt, 0), _MAX_EXPONENT))


def delay(
    attempt: int,
    rand: float | None = None,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
) -> float:
    """A delay in [ceiling/2, ceiling]; `rand` in [0, 1) makes it deterministic for tests."""
    top = ceiling(attempt, base, cap)
    r = random.random() if rand is None else rand
    return top / 2 + r * top / 2
