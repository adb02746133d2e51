"""Per-customer counters on Aerospike: the dashboard's figures and billing's usage counts.

SQLite keeps `dashboard_counts` in the transaction that changes a task. Here a task's counted
state changes in its own record (one atomic write, which also sets `cd` = 1: "counters
dirty"), and `Counts.apply(task)` moves the customer's counter record by the difference, in
three single-record steps that a replay finishes and never repeats:

1. On the task, compare-and-set on a fresh read: `cv` = what the task contributes now, and,
   when that differs from the `cv` already there, the difference as `cpend` under a new
   `cver` (the task's own counter, +1 per difference); `cd` removed.
2. On the counter record `counts/<customer>`, one `operate` filtered by "`ap[task]` is absent
   or below `cver`": every counter incremented by `cpend` and `ap[task] = cver`. A repeat
   (after a timeout, a crash, or by another core) is filtered out: applied once.
3. On the task, `cpend` and `cver` removed (filtered by `cver` unchanged).

`apply` finishes a `cpend` it finds before computing a new one, so the differences chain and
the counters always equal the sum of the `cv` values.

The counter record is sharded: a task counts in `counts/<customer>/<n>`, `n = crc32(task id) %
count_shards` (the URL's `count_shards`, default 16; shard 0 keeps the unsharded key
`counts/<customer>`), so each record's `ap` holds the tasks in play of its shard only, and the
reads sum the shards (one batch read). Counters are sums, so any split of them adds up.
`repair` finishes what a crash left: the tasks the numeric indexes on `cd` and `cver` name.
docs/storage-aerospike.md has the layout.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from collections.abc import Mapping
from functools import partial
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.batch.records import BatchRecords, Write
from aerospike_helpers.operations import expression_operations as eops
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain.billing import Month, UsageCounts, usage_counts, usage_kind
from asg_grpc.domain.dashboard import Counters, day_of
from asg_grpc.domain.errors import Unavailable
from asg_grpc.store.aerospike.connection import AerospikeUrl
from asg_grpc.store.aerospike.records import BATCH_CHUNK, GEN_EQ, Records, ensure_index, query

log = logging.getLogger(__name__)

MAX_INT = 2**63 - 1
CAS_ROUNDS = 16
REPAIR_EVERY = 2.0  # seconds between two crash repairs of one store (`Counts.repair`)
_DECIDED = frozenset({"verified", "settled", "failed"})
_LABELED = frozenset({"verified", "settled"})
# Once here a task's contribution never changes again, so its `ap` entry is dropped.
_FINAL = frozenset({"settled", "failed", "cancelled", "expired"})
FLOAT_KEYS = frozenset({"conf", "stls"})

# The operation that marks a task's counters dirty: add it to every write that changes what
# `contribution` reads (status, verdict, settlement), or that creates a task.
DIRTY = "cd"


def dirty() -> Any:
    return ops.write(DIRTY, 1)


# What `contribution` and `Counts.apply_changed` read of a task: the changing write reads them
# back (`read_counted`), so the counting needs no batch read of its own.
COUNTED_BINS = (
    "tid", "owner", "status", "created", "type", "conf", "wcount", "acount", "label", "settled",
    "decided", "tier", "cv", "cseq", "cpend", DIRTY,
)  # fmt: skip


def read_counted() -> list[Any]:
    """Reads to end a task's changing write with (after its writes: they see the new state)."""
    return [ops.read(name) for name in COUNTED_BINS]


def _month(unix_time: float) -> str:
    return str(Month.of(unix_time))


def contribution(bins: dict[str, Any]) -> dict[str, float]:
    """What one task record adds to its customer's counters (SQLite's Tally.add plus the
    submission day and billing's usage rows), as map key → amount."""
    status, created = bins["status"], bins["created"]
    out: dict[str, float] = {f"st|{status}": 1, f"day|{day_of(created)}": 1}
    out[f"sub|{_month(created)}|{bins['type']}"] = 1
    if status in _DECIDED:
        confidence = float(bins.get("conf") or 0.0)
        out["dec"] = 1
        out["conf"] = confidence
        out[f"bin|{min(9, max(0, int(confidence * 10 + 1e-9)))}"] = 1
        workers = bins.get("wcount") or 0
        if workers and bins.get("acount") == workers:
            out["perf"] = 1
    if status in _LABELED and bins.get("label") is not None:
        out[f"lab|{bins['label']}"] = 1
    if status == "settled" and bins.get("settled") is not None:
        out["stl"] = 1
        out["stls"] = float(bins["settled"] - created)
    decided = bins.get("decided")
    if decided is not None:
        row = f"use|{_month(decided)}|{bins['type']}|{bins.get('tier') or ''}|{usage_kind(status)}"
        out[f"{row}|t"] = 1
        out[f"{row}|l"] = bins.get("wcount") or 0
    return out


def _earliest(created: float) -> Any:
    """first_task_at: the earliest `created` seen (a minimum: repeating it changes nothing)."""
    earliest = exp.Cond(
        exp.And(exp.BinExists("first"), exp.LE(exp.FloatBin("first"), created)),
        exp.FloatBin("first"),
        created,
    ).compile()
    return eops.expression_write("first", earliest)


def _not_applied(task_id: str, cver: int) -> Any:
    """The counter record has not applied difference `cver` of this task yet."""
    return exp.Or(
        exp.Not(
            exp.MapGetByKey(
                None, aerospike.MAP_RETURN_EXISTS, exp.ResultType.BOOLEAN, task_id, exp.MapBin("ap")
            )
        ),
        exp.LT(
            exp.MapGetByKey(
                None, aerospike.MAP_RETURN_VALUE, exp.ResultType.INTEGER, task_id, exp.MapBin("ap")
            ),
            cver,
        ),
    )


def _difference(new: dict[str, float], old: dict[str, float]) -> dict[str, float]:
    keys = set(new) | set(old)
    delta = {k: new.get(k, 0) - old.get(k, 0) for k in keys}
    return {k: (float(v) if k in FLOAT_KEYS else int(v)) for k, v in delta.items() if v}


def write_in_chunks(records: Records, writes: list[Write]) -> list[Any]:
    """The result rows of `writes`, sent in batch writes of BATCH_CHUNK: a thousand records in
    one can outlast the client's timeout on a loaded machine, and a timed-out chunk is retried
    whole, so every write in it must be one a repeat finds harmless (guarded or CREATE_ONLY)."""
    client, rows = records.client, []
    for start in range(0, len(writes), BATCH_CHUNK):
        chunk = BatchRecords(writes[start : start + BATCH_CHUNK])
        rows += records.retry(partial(client.batch_write, chunk)).batch_records
    return rows


def read_in_chunks(records: Records, keys: list[Any]) -> list[tuple[Any, Any, Any]]:
    """`Records.get_many` in batch reads of BATCH_CHUNK: (key, meta, bins), meta None if absent."""
    return [
        row
        for start in range(0, len(keys), BATCH_CHUNK)
        for row in records.get_many(keys[start : start + BATCH_CHUNK])
    ]


class Counts:
    def __init__(self, records: Records, url: AerospikeUrl) -> None:
        self._records = records
        self._tasks = url.set_prefix + "tasks"
        self._counts = url.set_prefix + "counts"
        self._shards = url.count_shards
        self._repaired_at: float | None = None  # monotonic; `repair` runs at most every REPAIR_EVERY
        ensure_index(records, DIRTY, aerospike.INDEX_NUMERIC, f"{url.namespace}_task_cd")
        ensure_index(records, "cver", aerospike.INDEX_NUMERIC, f"{url.namespace}_task_cver")

    def _shard(self, customer_id: str, task_id: str) -> str:
        """The key of the counter record `task_id` counts in."""
        n = zlib.crc32(task_id.encode()) % self._shards
        return customer_id if n == 0 else f"{customer_id}/{n}"

    def _shard_keys(self, customer_id: str) -> list[str]:
        return [customer_id, *(f"{customer_id}/{n}" for n in range(1, self._shards))]

    def _operate(
        self, set_name: str, key: str, operations: list[Any], policy: dict[str, Any], gen: int = 0
    ) -> None:
        client, full_key = self._records.client, self._records.key(set_name, key)
        self._records.retry(lambda: client.operate(full_key, operations, {"gen": gen}, policy))

    # writes ------------------------------------------------------------------------------

    def follow_up(self, task_id: str) -> None:
        """`apply` right after a change, which stands without it: if the store cannot be
        reached now, or refuses the write (a counter record at its size limit), the task stays
        marked and `repair` counts it later."""
        with contextlib.suppress(Unavailable):
            try:
                self.apply(task_id)
            except aex.AerospikeError as exc:
                log.warning(
                    "task not counted yet; repair retries", extra={"task_id": task_id, "error": str(exc)}
                )

    def apply(self, task_id: str) -> None:
        """Steps 1-3 for one task; returns once its counters hold its current state."""
        for _ in range(CAS_ROUNDS):
            found = self._records.get(self._tasks, task_id)
            if found is None:
                return
            bins, gen = found
            if "cpend" in bins:
                self._finish(task_id, bins)
                continue
            new = contribution(bins)
            delta = _difference(new, bins.get("cv") or {})
            if not delta and DIRTY not in bins:
                return
            operations = [ops.write(DIRTY, None)]
            if delta:
                cver = int(bins.get("cseq") or 0) + 1
                operations += [
                    ops.write("cv", new),
                    ops.write("cpend", delta),
                    ops.write("cver", cver),
                    ops.write("cseq", cver),
                ]
            try:
                self._operate(self._tasks, task_id, operations, dict(GEN_EQ), gen)
            except aex.RecordGenerationError:
                continue  # changed meanwhile: read again
            if not delta:
                return
        raise Unavailable("the task's counters are being changed; retry shortly")

    @staticmethod
    def born(bins: dict[str, Any]) -> None:
        """Step 1 done at creation, on the bins of a record about to be CREATE_ONLY-written:
        the new task is born holding its whole contribution as its pending difference (cver 1,
        instead of the dirty mark). `apply_born` does steps 2 and 3; after a crash `repair`
        finds it by cver."""
        new = contribution(bins)
        bins.pop(DIRTY, None)
        bins.update({"cv": new, "cpend": _difference(new, {}), "cver": 1, "cseq": 1})

    def apply_born(self, customer_id: str, born: list[tuple[str, dict[str, Any]]]) -> None:
        """Steps 2 and 3 for a submission's new tasks (task id, bins as written), all at once:
        per counter shard, one increment by the sum of its tasks, filtered by "none of them is
        in `ap` yet" (all shards in one batch write; a shard record not there yet is created by
        it: a filter is not applied to a missing record), then one batch clean-up. A repair
        may have counted some meanwhile; then that shard's increment is filtered out and each
        of its tasks finishes on its own (`_finish` is per task). Like `follow_up`, an
        unreachable store leaves the rest to `repair`."""
        if not born:
            return
        by_shard: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for task_id, bins in born:
            by_shard.setdefault(self._shard(customer_id, task_id), []).append((task_id, bins))
        writes = []
        for key, tasks in sorted(by_shard.items()):
            task_ids = [task_id for task_id, _ in tasks]
            total: dict[str, float] = {}
            for _, bins in tasks:
                for name, amount in bins["cpend"].items():
                    total[name] = total.get(name, 0) + amount
            none_yet = exp.Eq(
                exp.MapGetByKeyList(None, aerospike.MAP_RETURN_COUNT, task_ids, exp.MapBin("ap")), 0
            ).compile()
            operations = [mops.map_increment("c", name, amount) for name, amount in sorted(total.items())]
            operations += [
                ops.write("cid", customer_id),
                mops.map_put_items("ap", dict.fromkeys(task_ids, 1)),
                _earliest(min(float(bins["created"]) for _, bins in tasks)),
            ]
            writes.append(
                Write(self._records.key(self._counts, key), operations, policy={"expressions": none_yet})
            )
        try:
            client = self._records.client
            answer = self._records.retry(lambda: client.batch_write(BatchRecords(writes)))
        except Unavailable:
            return
        except aex.AerospikeError as exc:  # as in follow_up: the tasks stand, repair retries
            log.warning("submission not counted yet; repair retries", extra={"error": str(exc)})
            return
        counted: list[str] = []
        for (_, tasks), row in zip(sorted(by_shard.items()), answer.batch_records, strict=True):
            if row.result == 0:
                counted += [task_id for task_id, _ in tasks]
            elif row.result == aex.FilteredOut.code:
                for task_id, _ in tasks:
                    self.follow_up(task_id)
            else:  # a shard at its size limit, say: those tasks stay born, repair retries
                log.warning("submission not counted yet; repair retries", extra={"result": row.result})
        if counted:
            with contextlib.suppress(Unavailable):  # left over: `repair` finds them by cver
                self._clear_born(counted)

    def _clear_born(self, task_ids: list[str]) -> None:
        """Step 3 for tasks still as born (cver 1), in one batch call."""
        keys = [self._records.key(self._tasks, task_id) for task_id in task_ids]
        clear = [ops.write("cpend", None), ops.write("cver", None)]
        still_born = {"expressions": exp.Eq(exp.IntBin("cver"), 1).compile()}
        client = self._records.client
        self._records.retry(lambda: client.batch_operate(keys, clear, policy_batch_write=still_born))

    def _finish(self, task_id: str, bins: dict[str, Any]) -> None:
        """Steps 2 and 3 for the `cpend` the task holds (each harmless to repeat)."""
        customer_id, cver, delta = bins["owner"], bins["cver"], bins["cpend"]
        shard = self._shard(customer_id, task_id)
        not_yet = _not_applied(task_id, cver).compile()
        operations = [mops.map_increment("c", key, amount) for key, amount in sorted(delta.items())]
        operations.append(mops.map_put("ap", task_id, cver))
        operations.append(ops.write("cid", customer_id))
        operations.append(_earliest(float(bins["created"])))
        with contextlib.suppress(aex.FilteredOut):
            self._operate(self._counts, shard, operations, {"expressions": not_yet})
        same = exp.Eq(exp.IntBin("cver"), cver).compile()
        with contextlib.suppress(aex.FilteredOut, aex.RecordNotFound):
            self._operate(
                self._tasks,
                task_id,
                [ops.write("cpend", None), ops.write("cver", None)],
                {"expressions": same},
            )
        if bins["status"] in _FINAL:
            with contextlib.suppress(aex.RecordNotFound):
                self._operate(
                    self._counts,
                    shard,
                    [mops.map_remove_by_key("ap", task_id, aerospike.MAP_RETURN_NONE)],
                    {},
                )

    def follow_up_many(self, task_ids: list[str]) -> None:
        """`follow_up` for many tasks changed at once (a payout's settled tasks), with the
        same three steps batched: one batch read, one batch of compare-and-sets (step 1, each
        on its own generation), per counter shard one increment filtered by "each of these
        tasks' `ap` entry is absent or below its new `cver`" (step 2, all shards in one batch
        write), one batch clean-up (step 3), and for tasks now final their `ap` entries
        dropped per shard. Whatever a batch step cannot do for a task (it changed meanwhile, a
        shard was filtered out because a repair counted one of its tasks first) is left to the
        per-task `follow_up`, so each difference is still applied once. Like `follow_up`, a
        failure never fails the change it counts: the tasks stay marked for `repair`."""
        if not task_ids:
            return
        try:
            self._follow_up_many(task_ids)
        except Unavailable:
            return
        except aex.AerospikeError as exc:
            log.warning("tasks not counted yet; repair retries", extra={"error": str(exc)})

    def _follow_up_many(self, task_ids: list[str]) -> None:
        keys = [self._records.key(self._tasks, task_id) for task_id in task_ids]
        found = read_in_chunks(self._records, keys)
        changed = [
            (task_id, bins, meta["gen"])
            for task_id, (_, meta, bins) in zip(task_ids, found, strict=True)
            if meta
        ]
        for task_id in self._count_changed(changed, {}, fresh=True):
            self.follow_up(task_id)

    def apply_changed(
        self, changed: list[tuple[str, dict[str, Any], int]], step_one: Mapping[str, list[Any]] | None = None
    ) -> set[str]:
        """`follow_up_many` for tasks just written by a write that ended with `read_counted`:
        each given as (task id, the bins it read back, the generation it left), so no batch
        read first. `step_one[task]`'s operations are added to the task's step 1 (a
        compare-and-set on that generation): they are applied exactly when it is. Answers the
        tasks step 1 left alone (changed meanwhile, or holding an older unapplied difference),
        for the caller to finish one by one (`follow_up`, or `Outbox.emit`). Like
        `follow_up`, a failure never fails the change it counts: the tasks stay marked."""
        try:
            return self._count_changed(changed, step_one or {}, fresh=False)
        except Unavailable:
            return set()
        except aex.AerospikeError as exc:
            log.warning("tasks not counted yet; repair retries", extra={"error": str(exc)})
            return set()

    def _count_changed(
        self,
        changed: list[tuple[str, dict[str, Any], int]],
        step_one: Mapping[str, list[Any]],
        *,
        fresh: bool,
    ) -> set[str]:
        """Steps 1-3 in batches for (task id, bins, generation) rows; the tasks a batch step
        could not do (answered for `follow_up`). A shard filtered out sends its tasks there
        when `fresh` (a batch read: nothing of theirs to keep), else each is finished here."""
        alone: list[str] = []  # finished one by one
        changing: list[tuple[str, dict[str, Any], int, dict[str, float], int]] = []
        writes: list[Write] = []
        for task_id, bins, gen in changed:
            if "cpend" in bins:
                alone.append(task_id)
                continue
            new = contribution(bins)
            delta = _difference(new, bins.get("cv") or {})
            if not delta and DIRTY not in bins and task_id not in step_one:
                continue
            operations = [ops.write(DIRTY, None), *step_one.get(task_id, ())]
            cver = int(bins.get("cseq") or 0) + 1
            if delta:
                operations += [
                    ops.write("cv", new),
                    ops.write("cpend", delta),
                    ops.write("cver", cver),
                    ops.write("cseq", cver),
                ]
            changing.append((task_id, bins, cver, delta, len(writes)))
            writes.append(
                Write(self._records.key(self._tasks, task_id), operations, {"gen": gen}, dict(GEN_EQ))
            )
        rows = write_in_chunks(self._records, writes)
        by_shard: dict[str, list[tuple[str, dict[str, Any], int, dict[str, float]]]] = {}
        for task_id, bins, cver, delta, row in changing:
            if rows[row].result != 0:  # changed meanwhile
                alone.append(task_id)
            elif delta:
                by_shard.setdefault(self._shard(bins["owner"], task_id), []).append(
                    (task_id, bins, cver, delta)
                )
        step_two: list[str] = []
        counted = self._apply_shards(by_shard, step_two)
        if counted:
            self._clear_counted(counted)
            final: dict[str, list[str]] = {}
            for shard, task_id, status, _ in counted:
                if status in _FINAL:
                    final.setdefault(shard, []).append(task_id)
            if final:
                drops = [
                    Write(
                        self._records.key(self._counts, shard),
                        [mops.map_remove_by_key_list("ap", ids, aerospike.MAP_RETURN_NONE)],
                    )
                    for shard, ids in sorted(final.items())
                ]
                write_in_chunks(self._records, drops)
        if fresh:
            return set(alone + step_two)
        for task_id in step_two:  # step 1 is done: `follow_up` (a fresh read) finishes it
            self.follow_up(task_id)
        return set(alone)

    def _apply_shards(
        self,
        by_shard: dict[str, list[tuple[str, dict[str, Any], int, dict[str, float]]]],
        alone: list[str],
    ) -> list[tuple[str, str, str, int]]:
        """Step 2 per shard in one batch write: (shard, task, status) of the tasks applied;
        a shard filtered out sends its tasks to `alone`."""
        if not by_shard:
            return []
        writes = []
        for shard, tasks in sorted(by_shard.items()):
            guards = [_not_applied(task_id, cver) for task_id, _, cver, _ in tasks]
            total: dict[str, float] = {}
            for _, _, _, delta in tasks:
                for name, amount in delta.items():
                    total[name] = total.get(name, 0) + amount
            operations = [mops.map_increment("c", name, amount) for name, amount in sorted(total.items())]
            operations += [
                ops.write("cid", tasks[0][1]["owner"]),
                mops.map_put_items("ap", {task_id: cver for task_id, _, cver, _ in tasks}),
                _earliest(min(float(bins["created"]) for _, bins, _, _ in tasks)),
            ]
            guard = guards[0] if len(guards) == 1 else exp.And(*guards)
            writes.append(
                Write(
                    self._records.key(self._counts, shard),
                    operations,
                    policy={"expressions": guard.compile()},
                )
            )
        counted: list[tuple[str, str, str, int]] = []
        for (shard, tasks), row in zip(
            sorted(by_shard.items()), write_in_chunks(self._records, writes), strict=True
        ):
            if row.result == 0:
                counted += [(shard, task_id, bins["status"], cver) for task_id, bins, cver, _ in tasks]
            else:  # filtered out (a repair was first), or refused: each task on its own
                alone += [task_id for task_id, _, _, _ in tasks]
        return counted

    def _clear_counted(self, counted: list[tuple[str, str, str, int]]) -> None:
        """Step 3 for tasks whose difference was applied, in one batch write: `cpend` and
        `cver` removed, each filtered by its `cver` still being the one applied."""
        clear = [ops.write("cpend", None), ops.write("cver", None)]
        writes = [
            Write(
                self._records.key(self._tasks, task_id),
                clear,
                policy={"expressions": exp.Eq(exp.IntBin("cver"), cver).compile()},
            )
            for _, task_id, _, cver in counted
        ]
        write_in_chunks(self._records, writes)

    def repair(self) -> None:
        """Finishes what a crash left: tasks still dirty, or holding an unapplied difference.
        At most once every REPAIR_EVERY seconds per store (the first call always): its two
        index queries cost ~20 point reads each, and the primary core's webhook fan-out calls
        it 20 times a second, for leftovers that only a crash or an outage makes."""
        now = time.monotonic()
        if self._repaired_at is not None and now - self._repaired_at < REPAIR_EVERY:
            return
        dirty_ones = query(self._records, self._tasks, predicates.equals(DIRTY, 1))
        pending = query(self._records, self._tasks, predicates.between("cver", 1, MAX_INT))
        for task_id in {b["tid"] for b in dirty_ones + pending}:
            self.apply(task_id)
        self._repaired_at = now

    # reads -------------------------------------------------------------------------------

    def _map(self, customer_id: str) -> tuple[dict[str, Any], float | None]:
        """The customer's counters (the shards summed) and first_task_at (their minimum)."""
        keys = [self._records.key(self._counts, key) for key in self._shard_keys(customer_id)]
        total: dict[str, Any] = {}
        first: float | None = None
        for _, meta, bins in self._records.get_many(keys):
            if meta is None:
                continue
            for name, amount in (bins.get("c") or {}).items():
                total[name] = total.get(name, 0) + amount
            if bins.get("first") is not None:
                first = bins["first"] if first is None else min(first, bins["first"])
        return total, first

    def counters(self, customer_id: str, since_day: str) -> Counters:
        c, _ = self._map(customer_id)
        out = Counters()
        for key, n in c.items():
            metric, _, bucket = key.partition("|")
            if metric == "st":
                out.by_status[bucket] = n
            elif metric == "day" and bucket >= since_day:
                out.per_day[bucket] = n
            elif metric == "bin":
                out.bins[int(bucket)] = n
            elif metric == "lab":
                out.labels[bucket] = n
        out.decided, out.confidence_sum = c.get("dec", 0), float(c.get("conf", 0.0))
        out.perfect = c.get("perf", 0)
        out.settled, out.settlement_seconds_sum = c.get("stl", 0), float(c.get("stls", 0.0))
        return out

    def status_total(self, customer_id: str, status: str | None) -> int:
        c, _ = self._map(customer_id)
        if status is not None:
            return int(c.get(f"st|{status}", 0))
        return sum(int(n) for k, n in c.items() if k.startswith("st|"))

    def status_totals(self) -> dict[str, int]:
        """A scan of the counter records (one per customer), bin `c` only."""
        scan = self._records.client.query(self._records.namespace, self._counts)
        scan.select("c")
        totals: dict[str, int] = {}
        for _key, _meta, bins in self._records.retry(scan.results):
            for key, n in (bins.get("c") or {}).items():
                metric, _, status = key.partition("|")
                if metric == "st":
                    totals[status] = totals.get(status, 0) + int(n)
        return totals

    def usage(self, customer_id: str, start: float, end: float) -> list[UsageCounts]:
        """Whole months: a month counts when its first second is in [start, end)."""
        c, _ = self._map(customer_id)
        rows: dict[tuple[str, str | None, str], list[int]] = {}
        for key, n in c.items():
            parts = key.split("|")
            if parts[0] not in ("sub", "use") or not start <= _month_start(parts[1]) < end or not n:
                continue
            if parts[0] == "sub":
                rows.setdefault(("|".join(parts[2:]), None, "submitted"), [0, 0])[0] += int(n)
                continue
            task_type, tier, kind, what = "|".join(parts[2:-3]), parts[-3] or None, parts[-2], parts[-1]
            rows.setdefault((task_type, tier, kind), [0, 0])[0 if what == "t" else 1] += int(n)
        return usage_counts((*row, tasks, labels) for row, (tasks, labels) in rows.items())

    def first_task_at(self, customer_id: str) -> float | None:
        return self._map(customer_id)[1]


def _month_start(text: str) -> float:
    year, month = text.split("-")
    return Month(int(year), int(month)).start
