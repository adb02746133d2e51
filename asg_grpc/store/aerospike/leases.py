"""Dispatch on Aerospike: the open tasks the dispatcher loads, and the dispatch lease.

Open tasks are read through the `open` secondary index (a bin holding the task's global
sequence number while it is pending or in progress, removed by the write that decides or ends
it), never by scanning. Only tasks at or below the sequence watermark are answered, so paging
by `after_seq` never passes a task another core is still writing (sequence.py). The lease is
one record changed only by compare-and-set on its generation.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import map_operations
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import (
    DEFAULT_CONSENSUS_METHOD,
    DEFAULT_LABOR,
    DEFAULT_MAX_LABELS,
    DEFAULT_TARGET_CONFIDENCE,
    TaskStatus,
)
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.records import GEN_EQ, UPDATE_ONLY, Records, ensure_index, query
from asg_grpc.store.aerospike.sequence import TaskSequence

LEASE_KEY = "dispatch"
CORES_KEY = "cores"  # the live cores (partitioned dispatch)
CONSENSUS_KEY = "consensus"  # the adaptive engine's snapshot (docs/quality.md)
# Sequence numbers per `open_tasks` index query (at least the page asked for), and the widest
# a run of empty windows grows to.
OPEN_WINDOW = 2000
MAX_OPEN_WINDOW = 1 << 20
_OPEN = (TaskStatus.PENDING.value, TaskStatus.IN_PROGRESS.value)


class AerospikeDispatch:
    """open_tasks and the dispatch lease of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None) -> None:
        self._drecords = records = Records(client, url.namespace, retry)
        self._dtasks = url.set_prefix + "tasks"
        self._meta = url.set_prefix + "meta"
        self._dsequence = TaskSequence(records, url.set_prefix + "counters")
        ensure_index(records, "open", aerospike.INDEX_NUMERIC, f"{url.namespace}_task_open")

    def open_tasks(self, *, after_seq: int, limit: int) -> list[OpenTask]:
        """Oldest first by global sequence, with labels and skips. The watermark is read before
        the index: a number allocated after it is above it, one allocated before is written."""
        top = self._dsequence.watermark(time.time())
        rows: list[dict[str, Any]] = []
        # In windows of sequence numbers, oldest first, until `limit` are found: one query of
        # every open task (5,000 under load) outlasted the client's 1 s timeout. A window that
        # finds nothing (decided history) makes the next one 4 times wider, so a core paging
        # from 0 over a long history still takes few queries.
        low, width = after_seq + 1, max(OPEN_WINDOW, limit)
        while low <= top and len(rows) < limit:
            high = min(top, low + width - 1)
            found = query(self._drecords, self._dtasks, predicates.between("open", low, high))
            found = [r for r in found if r["status"] in _OPEN and "decided" not in r]
            rows.extend(sorted(found, key=lambda r: r["gseq"]))
            width = width if found else min(width * 4, MAX_OPEN_WINDOW)
            low = high + 1
        tasks = []
        for r in rows[:limit]:
            task = OpenTask(
                seq=r["gseq"],
                task_id=r["tid"],
                task_type=r["type"],
                data_url=r["url"],
                question=r["question"],
                options=tuple(r["options"]),
                threshold=r["threshold"],
                target=r["target"],
                status=TaskStatus(r["status"]),
                method=r.get("cmethod", DEFAULT_CONSENSUS_METHOD),
                target_confidence=r.get("ctarget", DEFAULT_TARGET_CONFIDENCE),
                max_labels=r.get("maxlabels", DEFAULT_MAX_LABELS),
                gold=r.get("gold"),
                customer_id=r["owner"],
                labor=r.get("labor", DEFAULT_LABOR),
            )
            task.labels.update({worker: entry[0] for worker, entry in (r.get("labels") or {}).items()})
            task.skipped.update(r.get("skips") or {})
            tasks.append(task)
        return tasks

    # the adaptive engine's saved state ---------------------------------------------------

    def consensus_state(self) -> bytes | None:
        found = self._drecords.get(self._meta, CONSENSUS_KEY)
        return None if found is None else bytes(found[0]["snap"])

    def save_consensus_state(self, snapshot: bytes, now: float) -> None:
        """One record: bounded by the namespace's write-block size (docs/quality.md)."""
        self._drecords.put(self._meta, CONSENSUS_KEY, {"snap": bytearray(snapshot), "saved": now}, {})

    # the dispatch lease and the partition leases ----------------------------------------
    # One record per lease in `meta`: `dispatch` (the primary core: settlement, webhooks, jobs)
    # and `dispatch:<n>` (partition n of the open tasks, asg_grpc/dispatch/partitions.py).

    def _lease(self, name: str = LEASE_KEY) -> tuple[tuple[str, float] | None, int]:
        found = self._drecords.get(self._meta, name)
        if found is None or "owner" not in found[0]:
            return None, 0 if found is None else found[1]
        return (found[0]["owner"], found[0]["hb"]), found[1]

    def dispatch_lease(self) -> tuple[str, float] | None:
        return self._lease()[0]

    def take_dispatch_lease(self, owner: str, now: float, expected: tuple[str, float] | None) -> bool:
        return self.take_lease(LEASE_KEY, owner, now, expected)

    def renew_dispatch_lease(self, owner: str, now: float) -> bool:
        return self.renew_lease(LEASE_KEY, owner, now)

    def release_dispatch_lease(self, owner: str) -> None:
        self.release_lease(LEASE_KEY, owner)

    def leases(self, names: list[str]) -> dict[str, tuple[str, float]]:
        """The held ones of the named leases (one batch read), by name."""
        if not names:
            return {}
        found = self._drecords.get_many([self._drecords.key(self._meta, name) for name in names])
        held = {}
        for name, (_, _, bins) in zip(names, found, strict=True):
            if bins and "owner" in bins:
                held[name] = (bins["owner"], bins["hb"])
        return held

    def take_lease(self, name: str, owner: str, now: float, expected: tuple[str, float] | None) -> bool:
        """Compare-and-set: taken only if the lease is still `expected` (None: nobody's)."""
        current, gen = self._lease(name)
        if current != expected:
            return False
        bins = {"owner": owner, "hb": now}
        if gen == 0:
            if self._drecords.create(self._meta, name, bins):
                return True
            return self._lease(name)[0] == (owner, now)  # a retried try of ours wrote it
        try:
            self._drecords.put(self._meta, name, bins, GEN_EQ, gen=gen)
        except aex.RecordGenerationError:
            return self._lease(name)[0] == (owner, now)
        return True

    def renew_lease(self, name: str, owner: str, now: float) -> bool:
        """One write filtered by "`owner` is still us" (no read first: a core renews 16
        partition leases every heartbeat). It bumps the generation, so a taker's
        compare-and-set on what it read before fails, as with a compare-and-set renewal;
        filtered out or gone → lost. A retried renewal of ours that was applied is found
        still ours by the repeat, so it cannot be mistaken for a loss."""
        client, key = self._drecords.client, self._drecords.key(self._meta, name)
        ours = {"expressions": exp.Eq(exp.StrBin("owner"), owner).compile(), **UPDATE_ONLY}
        try:
            self._drecords.retry(lambda: client.operate(key, [ops.write("hb", now)], None, ours))
        except (aex.FilteredOut, aex.RecordNotFound):
            return False
        return True

    def release_lease(self, name: str, owner: str) -> None:
        """Removed only if still ours and unchanged since read (generation check)."""
        current, gen = self._lease(name)
        if current is None or current[0] != owner:
            return
        client, key = self._drecords.client, self._drecords.key(self._meta, name)
        policy = {"gen": aerospike.POLICY_GEN_EQ, "generation": gen}
        with contextlib.suppress(aex.RecordGenerationError, aex.RecordNotFound):
            self._drecords.retry(lambda: client.remove(key, policy=policy))

    # the live cores ----------------------------------------------------------------------

    def announce_core(self, owner: str, now: float) -> None:
        """`meta/cores`: a map core → last heartbeat, one map put (no read, no race)."""
        key = self._drecords.key(self._meta, CORES_KEY)
        put = [map_operations.map_put("cores", owner, now)]
        client = self._drecords.client
        self._drecords.retry(lambda: client.operate(key, put))

    def cores(self) -> dict[str, float]:
        found = self._drecords.get(self._meta, CORES_KEY)
        return {} if found is None else dict(found[0].get("cores") or {})

    def forget_core(self, owner: str) -> None:
        """Off the map (a stopping core, or one found dead); harmless when absent."""
        key = self._drecords.key(self._meta, CORES_KEY)
        remove = [map_operations.map_remove_by_key("cores", owner, aerospike.MAP_RETURN_NONE)]
        client = self._drecords.client
        with contextlib.suppress(aex.RecordNotFound):
            self._drecords.retry(lambda: client.operate(key, remove))
