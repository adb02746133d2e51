"""Identifiers: a prefix, then 12 hex digits of milliseconds and 16 random hex digits.

Time first keeps new rows at the end of every index on the id, and sorting ids sorts by age.
"""

from __future__ import annotations

import os
import time

# The longest id the API takes (task, batch, job, webhook, customer, worker ids; cursors):
# ours are 32 or 33 characters, so anything longer names nothing (docs/api.md, "Limits").
MAX_ID = 64


def new_id(prefix: str, now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{ms:012x}{os.urandom(8).hex()}"


def new_ids(prefix: str, count: int, now: float) -> list[str]:
    """Many ids at once, sharing the clock read and one call for randomness."""
    stamp = f"{prefix}_{int(now * 1000):012x}"
    rand = os.urandom(8 * count).hex()
    return [stamp + rand[i * 16 : i * 16 + 16] for i in range(count)]
