"""Partitioned dispatch: several cores on one shared store each dispatch a share of the open tasks.

A task belongs to partition `seq % PARTITIONS`; each partition has a lease (`dispatch:<n>`)
that one core holds and renews every HEARTBEAT. Every core announces itself in the store's
list of live cores; with N live cores, the one at place i (sorted by owner) aims for
`PARTITIONS // N` partitions, one more when `i < PARTITIONS % N`, so the shares add up to
PARTITIONS. Each round a core renews what it holds, gives back what is above its share (its
dispatcher first commits and drops those tasks), and takes free partitions or ones whose
holder is gone (the same test as the dispatch lease: a dead process on this host, or a
heartbeat older than STALE_AFTER). So a core that dies hands its share over within one lease
period, and a core that joins gets its share within two heartbeats. docs/storage.md says why
partitions rather than routing every worker to one owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from asg_grpc.dispatch.lease import HEARTBEAT, STALE_AFTER, alive_here

log = logging.getLogger("asg.dispatch")

PARTITIONS = 16


@runtime_checkable
class PartitionStore(Protocol):
    """What a shared store adds for partitioned dispatch (asg_grpc/store/aerospike/leases.py)."""

    def leases(self, names: list[str]) -> dict[str, tuple[str, float]]: ...
    def take_lease(self, name: str, owner: str, now: float, expected: tuple[str, float] | None) -> bool: ...
    def renew_lease(self, name: str, owner: str, now: float) -> bool: ...
    def release_lease(self, name: str, owner: str) -> None: ...
    def announce_core(self, owner: str, now: float) -> None: ...
    def cores(self) -> dict[str, float]: ...
    def forget_core(self, owner: str) -> None: ...


def lease_name(partition: int) -> str:
    return f"dispatch:{partition}"


def gone(owner: str, heartbeat_at: float, now: float) -> bool:
    """The holder of a lease (or an entry of the live cores) is dead or silent."""
    return alive_here(owner, heartbeat_at) is False or now - heartbeat_at >= STALE_AFTER


def share(owner: str, live: list[str], count: int = PARTITIONS) -> int:
    """How many partitions `owner` aims for among the `live` cores (sorted, owner included)."""
    place = live.index(owner)
    return count // len(live) + (1 if place < count % len(live) else 0)


class Partitions:
    """The partitions this core dispatches; `on_gained` / `on_lost` tell the dispatcher."""

    def __init__(
        self,
        store: PartitionStore,
        owner: str,
        on_gained: Callable[[set[int]], None],
        on_lost: Callable[[set[int]], None],
        count: int = PARTITIONS,
    ) -> None:
        self._store = store
        self.owner = owner
        self.count = count
        self.held: set[int] = set()
        self._on_gained = on_gained
        self._on_lost = on_lost

    def rebalance(self, now: float | None = None) -> None:
        """One round: announce, renew, give back the surplus, take up to the share."""
        now = time.time() if now is None else now
        store = self._store
        store.announce_core(self.owner, now)
        live = []
        for core, heartbeat_at in store.cores().items():
            if core == self.owner or not gone(core, heartbeat_at, now):
                live.append(core)
            else:
                store.forget_core(core)
        live.sort()
        lost = {p for p in self.held if not store.renew_lease(lease_name(p), self.owner, now)}
        if lost:
            log.warning("dispatch partitions taken over", extra={"partitions": sorted(lost)})
            self.held -= lost
            self._on_lost(lost)
        want = share(self.owner, live, self.count)
        if len(self.held) > want:
            surplus = set(sorted(self.held)[want:])
            self._on_lost(surplus)  # committed and dropped before anyone else may take them
            for p in surplus:
                store.release_lease(lease_name(p), self.owner)
            self.held -= surplus
            log.info("dispatch partitions given back", extra={"partitions": sorted(surplus)})
            return
        if len(self.held) == want:
            return
        names = [lease_name(p) for p in range(self.count)]
        current = store.leases(names)
        gained: set[int] = set()
        for p in range(self.count):
            if len(self.held) + len(gained) >= want:
                break
            if p in self.held:
                continue
            holder = current.get(lease_name(p))
            if holder is not None and not gone(holder[0], holder[1], now):
                continue
            if store.take_lease(lease_name(p), self.owner, now, holder):
                gained.add(p)
        if gained:
            self.held |= gained
            log.info("dispatch partitions taken", extra={"partitions": sorted(gained)})
            self._on_gained(gained)

    async def keep(self) -> None:
        """Rebalance every HEARTBEAT until cancelled (a failed round is retried next time)."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                self.rebalance()
            except Exception:
                log.exception("rebalancing dispatch partitions failed; retrying")

    def release(self) -> None:
        """At a clean stop, after the dispatcher committed: the others take over at once."""
        for p in sorted(self.held):
            self._store.release_lease(lease_name(p), self.owner)
        self.held.clear()
        self._store.forget_core(self.owner)
