"""Counters across reconnects, and the periodic progress line built from them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

log = logging.getLogger("worker_agent.progress")

# Payments remembered to tell a repeated notice from a new one (the core may notify twice,
# e.g. a settler that restarted); older ones are forgotten.
SEEN_PAYMENTS = 10_000


@dataclass
class Stats:
    assigned: int = 0
    labels_sent: int = 0
    labels_acked: int = 0
    skips: int = 0
    errors: int = 0
    notices: int = 0  # WorkNotice: why the core held work back (banned, capped)
    reconnects: int = 0
    held: int = 0
    connected: bool = False
    worker_id: str = ""  # from the last welcome: tells agents apart in a shared log
    payments: int = 0
    sats_earned: int = 0  # paid while this agent was connected: not the worker's lifetime total
    started: float = field(default_factory=time.monotonic)
    _seen_payments: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)

    def record_payment(self, key: str, sats: int) -> bool:
        """Count a payment once per key (its output and tasks); False for one already counted."""
        if key in self._seen_payments:
            return False
        self._seen_payments[key] = None
        if len(self._seen_payments) > SEEN_PAYMENTS:
            self._seen_payments.popitem(last=False)
        self.payments += 1
        self.sats_earned += sats
        return True


@dataclass
class Progress:
    """Turns counters into a log line; the rate is acked labels per second since the last line."""

    stats: Stats
    _last_acked: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    def fields(self, now: float | None = None) -> dict[str, object]:
        now = time.monotonic() if now is None else now
        s = self.stats
        elapsed = max(now - self._last_time, 1e-9)
        rate = (s.labels_acked - self._last_acked) / elapsed
        self._last_acked, self._last_time = s.labels_acked, now
        return {**self._counts(), "held": s.held, "connected": s.connected, "rate_per_s": round(rate, 2)}

    def _counts(self) -> dict[str, object]:
        s = self.stats
        return {
            "worker_id": s.worker_id,
            "assigned": s.assigned,
            "labels_acked": s.labels_acked,
            "labels_sent": s.labels_sent,
            "skips": s.skips,
            "errors": s.errors,
            "notices": s.notices,
            "reconnects": s.reconnects,
            "payments": s.payments,
            "sats_earned": s.sats_earned,
        }

    def summary(self) -> dict[str, object]:
        """Totals for the last line before exit, with the average rate over the whole run."""
        s = self.stats
        elapsed = max(time.monotonic() - s.started, 1e-9)
        return {
            **self._counts(),
            "rate_per_s": round(s.labels_acked / elapsed, 2),
            "seconds": round(elapsed, 1),
        }

    async def report_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            log.info("progress", extra=self.fields())
