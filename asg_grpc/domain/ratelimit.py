"""Per-key token buckets. Pure: the caller passes the clock, so the rule is testable exactly.

A key starts with `burst` tokens; each call takes one (or its `cost`: a message of n labels takes
n); tokens come back at `per_second`, up to `burst`. A call that finds too few tokens is refused
with the seconds until they are back. A cost above `burst` passes on a full bucket and leaves it
in debt, so no message is refused forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from asg_grpc.domain.errors import RateLimited
from asg_grpc.domain.tiers import RateLimit

# Past this many buckets, full ones are forgotten (a full bucket is the same as a new one).
MAX_IDLE_BUCKETS = 100_000


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float
    limit: RateLimit

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = now


class RateLimiter:
    def __init__(self, max_buckets: int = MAX_IDLE_BUCKETS) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._max_buckets = max_buckets

    def take(self, key: str, limit: RateLimit, now: float, cost: int = 1) -> None:
        """Spend `cost` tokens of `key`'s bucket, or raise RateLimited (retry_after ≥ 1 s)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._forget_full(now)
            bucket = self._buckets[key] = Bucket(float(limit.burst), now, limit)
        else:
            bucket.limit = limit  # the key's tier may have changed
            bucket.refill(now)
        need = float(min(cost, limit.burst))
        if bucket.tokens >= need:
            bucket.tokens -= cost
            return
        wait = (need - bucket.tokens) / limit.per_second
        raise RateLimited(max(1, math.ceil(wait)))

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        for bucket in self._buckets.values():
            bucket.refill(now)
        self._buckets = {k: b for k, b in self._buckets.items() if b.tokens < b.limit.burst}

    def __len__(self) -> int:
        return len(self._buckets)
