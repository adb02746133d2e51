"""What the customers area of a store returns besides domain objects (asg_grpc/store/areas.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who an API key belongs to, and the tier that sets the key's rate limit."""

    customer_id: str
    tier: str
    # The customer's default consensus method (None: the deployment's), read with the key so a
    # submission needs no second lookup.
    consensus_method: str | None = None
