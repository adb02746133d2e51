"""The core's per-key rate limit: a token bucket per API-key hash, sized by the key's tier.

It lives in the core, not the gateway, so any number of gateways share one limit per core
process. Several core processes on one store each keep their own buckets (docs/billing.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from asg_grpc.domain.ratelimit import RateLimiter
from asg_grpc.domain.tiers import RateLimit, Tier, tier_named


class KeyLimits:
    def __init__(
        self, tiers: dict[str, Tier], *, enabled: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = enabled
        self._tiers = tiers
        self._limiter = RateLimiter()
        self._clock = clock

    def limit_for(self, tier: str) -> RateLimit:
        """A tier no longer configured falls back to the sandbox limit."""
        return tier_named(self._tiers, tier).rate_limit

    def take(self, key_hash: str, limit: RateLimit) -> None:
        """Count one call of the key, limited to `limit`; raises RateLimited when it has none left."""
        self._limiter.take(key_hash, limit, self._clock())
