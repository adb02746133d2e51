"""Customer tiers: what a task costs, how many labels a customer may reserve, how fast a key
may call. Pure: the configuration arrives as a string (ASG_TIERS) and leaves as `Tier`s.

Prices are integers in satoshis (DESIGN.md "Money"): a task costs its task price plus the label
price for every label collected, so a 3-label task at the defaults costs 100 + 3 × 300 = 1000.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_LABEL_PRICE_SATS = 300
DEFAULT_TASK_PRICE_SATS = 100
SANDBOX = "sandbox"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class TierConfigError(ValueError):
    """The tier configuration cannot be used; the message says which tier and field."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per API key: `burst` calls at once, refilled at `per_second`."""

    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    label_price_sats: int
    task_price_sats: int
    # Labels a customer of the tier may reserve in all (a task reserves its threshold).
    label_quota: int
    rate_limit: RateLimit


def cost_sats(tier: Tier, labels_collected: int) -> int:
    """What a decided task costs its customer: `settlement.total_cost_sats`."""
    if labels_collected < 0:
        raise ValueError("labels_collected must be 0 or more")
    return tier.task_price_sats + tier.label_price_sats * labels_collected


def tier_named(tiers: dict[str, Tier], name: str | None) -> Tier:
    """The tier called `name`; one no longer configured (or unknown: None) is sandbox, the
    tier every customer starts on, so nothing is priced or limited by a tier that is gone."""
    return tiers.get(name or SANDBOX) or tiers[SANDBOX]


def default_tiers(sandbox_label_quota: int = 500) -> dict[str, Tier]:
    """`sandbox` (every new customer) and `pro` (set by an operator)."""
    return {
        SANDBOX: Tier(
            name=SANDBOX,
            label_price_sats=DEFAULT_LABEL_PRICE_SATS,
            task_price_sats=DEFAULT_TASK_PRICE_SATS,
            label_quota=sandbox_label_quota,
            rate_limit=RateLimit(per_second=10.0, burst=20),
        ),
        "pro": Tier(
            name="pro",
            label_price_sats=250,
            task_price_sats=50,
            label_quota=10_000_000,
            rate_limit=RateLimit(per_second=200.0, burst=400),
        ),
    }


_TIER_FIELDS = {"label_price_sats", "task_price_sats", "label_quota", "rate_limit"}
_RATE_FIELDS = {"per_second", "burst"}


def parse_tiers(text: str, base: dict[str, Tier]) -> dict[str, Tier]:
    """Tiers from a JSON object `{"<tier>": {<fields>}}` laid over `base`.

    A tier named in `base` takes only the fields given; a new tier must give them all. Raises
    TierConfigError naming the tier and field at fault.
    """
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TierConfigError(f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise TierConfigError('must be a JSON object: {"<tier>": {"label_price_sats": …}, …}')
    tiers = dict(base)
    for name, fields in raw.items():
        if not name or not set(name) <= _NAME_CHARS or len(name) > 32:
            raise TierConfigError(f"tier name {name!r} must be 1-32 of a-z, 0-9, _ and -")
        tiers[name] = _tier(name, fields, base.get(name))
    if SANDBOX not in tiers:
        raise TierConfigError("must keep the sandbox tier (new customers start there)")
    return tiers


def _tier(name: str, fields: Any, known: Tier | None) -> Tier:
    where = f"tier {name!r}"
    if not isinstance(fields, dict):
        raise TierConfigError(f"{where} must be an object")
    unknown = set(fields) - _TIER_FIELDS
    if unknown:
        raise TierConfigError(f"{where} has unknown field {sorted(unknown)[0]!r}")
    if known is None:
        missing = _TIER_FIELDS - set(fields)
        if missing:
            raise TierConfigError(f"{where} is new and needs {', '.join(sorted(missing))}")
    changes: dict[str, Any] = {}
    for key in ("label_price_sats", "task_price_sats", "label_quota"):
        if key in fields:
            changes[key] = _integer(
                f"{where} {key}", fields[key], minimum=0 if key == "task_price_sats" else 1
            )
    if "rate_limit" in fields:
        changes["rate_limit"] = _rate_limit(where, fields["rate_limit"], known)
    if known is None:
        return Tier(name=name, **changes)
    return replace(known, **changes)


def _rate_limit(where: str, fields: Any, known: Tier | None) -> RateLimit:
    if not isinstance(fields, dict):
        raise TierConfigError(f"{where} rate_limit must be an object with per_second and burst")
    unknown = set(fields) - _RATE_FIELDS
    if unknown:
        raise TierConfigError(f"{where} rate_limit has unknown field {sorted(unknown)[0]!r}")
    if known is None and _RATE_FIELDS - set(fields):
        raise TierConfigError(f"{where} rate_limit needs per_second and burst")
    per_second = fields.get("per_second", known.rate_limit.per_second if known else 0.0)
    if isinstance(per_second, bool) or not isinstance(per_second, int | float):
        raise TierConfigError(f"{where} rate_limit.per_second must be a number")
    if not math.isfinite(per_second) or per_second <= 0:
        raise TierConfigError(f"{where} rate_limit.per_second must be more than 0")
    burst = _integer(
        f"{where} rate_limit.burst", fields.get("burst", known.rate_limit.burst if known else 0), minimum=1
    )
    return RateLimit(per_second=float(per_second), burst=burst)


def _integer(where: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TierConfigError(f"{where} must be an integer")
    if value < minimum:
        raise TierConfigError(f"{where} must be at least {minimum}")
    return value
