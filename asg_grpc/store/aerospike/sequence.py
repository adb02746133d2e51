"""The global task sequence on Aerospike: the order the dispatcher loads open tasks in
(`open_tasks(after_seq=…)`), and the watermark below which every allocated number is written.

One counter record. A submission takes its numbers and registers them as in flight in the same
`operate` (increment, then a map put keyed by an expression on the incremented bin), writes its
tasks, then removes the entry. So a reader that reads the counter first and then the open
tasks can tell which numbers may still appear: none at or below the watermark ever will, and
a dispatcher paging by `after_seq` never steps over a task a slower core is still writing.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import expression_operations as eops
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.store.aerospike.records import Records

# An allocation in flight this long was left by a crash between the counter and the task
# writes: it stops holding the watermark back, and its numbers stay a gap.
IN_FLIGHT_SECONDS = 30.0
COUNTER_KEY = "tasks"


class TaskSequence:
    def __init__(self, records: Records, set_name: str) -> None:
        self._records = records
        self._set = set_name
        self._key = records.key(set_name, COUNTER_KEY)
        # The map bin must exist for the expression that writes into it.
        records.create(set_name, COUNTER_KEY, {"seq": 0, "inflight": {}})

    def allocate(self, count: int, now: float) -> int:
        """The first of `count` consecutive numbers, registered in flight until `done`."""
        client, operations = self._records.client, self.allocation(count, now)
        _, _, bins = self._records.retry(lambda: client.operate(self._key, operations))
        return self.first(bins, count)

    def allocation(self, count: int, now: float) -> list[Any]:
        """`allocate`'s operations, to ride in a batch with other records' writes (submit's
        quota reservations): read the first number back from that row with `first`."""
        entry = exp.MapPut(
            None, None, exp.Sub(exp.IntBin("seq"), count - 1), now, exp.MapBin("inflight")
        ).compile()
        return [
            ops.increment("seq", count),
            eops.expression_write("inflight", entry),
            ops.read("seq"),
        ]

    @staticmethod
    def first(bins: dict[str, Any], count: int) -> int:
        return int(bins["seq"]) - count + 1

    @property
    def key(self) -> tuple[str, str, str]:
        return self._key

    def done(self, first: int) -> None:
        """The tasks of the allocation starting at `first` are written (or never will be)."""
        client = self._records.client
        operation = [mops.map_remove_by_key("inflight", first, aerospike.MAP_RETURN_NONE)]
        self._records.retry(lambda: client.operate(self._key, operation))

    def watermark(self, now: float) -> int:
        """Every number at or below it that will ever name a task names a written one."""
        found = self._records.get(self._set, COUNTER_KEY)
        if found is None:
            return 0
        bins, _ = found
        top = int(bins["seq"])
        inflight: dict[int, float] = bins.get("inflight") or {}
        stale = [first for first, at in inflight.items() if now - at >= IN_FLIGHT_SECONDS]
        live = [first for first in inflight if first not in stale]
        for first in stale:  # a crash's leftover: best effort, the next reader retries
            with contextlib.suppress(aex.AerospikeError):
                self.done(first)
        return min([top, *(first - 1 for first in live)])
