"""The event outbox on Aerospike: events about a task are marked in the task's own record by
the write that changes it, then emitted as event records by an idempotent follow-up.

SQLite writes an event in the transaction that changes the task. Here the mark (`ev`: event
type → when, and `evp` = 1 while any is unemitted) rides in that same single-record write, so
an event can never be lost; `emit` turns marks into event records with deterministic keys
(`<task>:<type>`, CREATE_ONLY: an event is written once however often it is replayed), then
clears the marks. `repair` emits whatever a crash left marked (the numeric index on `evp`).
"""

from __future__ import annotations

from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers.batch.records import Write
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain import ids
from asg_grpc.store.aerospike.connection import AerospikeUrl
from asg_grpc.store.aerospike.counters import Counts, dirty, read_in_chunks, write_in_chunks
from asg_grpc.store.aerospike.records import GEN_EQ, Records, ensure_index, query

EVENT_COUNTER = "events"


def mark(event_type: str, now: float) -> list[Any]:
    """The operations that mark an event in the task record (add to the changing write); an
    event is a change of state, so the task's counters are marked dirty too (counters.py)."""
    return [mops.map_put("ev", event_type, now), ops.write("evp", 1), dirty()]


class Outbox:
    def __init__(self, records: Records, url: AerospikeUrl) -> None:
        self._records = records
        self._tasks = url.set_prefix + "tasks"
        self._customers = url.set_prefix + "customers"
        self._webhooks = url.set_prefix + "webhooks"
        self._events = url.set_prefix + "events"
        self._counters = url.set_prefix + "counters"
        # The follow-up of a task's change also moves its customer's counters (counters.py).
        self.counts = Counts(records, url)
        records.create(self._counters, EVENT_COUNTER, {"seq": 0})
        ensure_index(records, "evp", aerospike.INDEX_NUMERIC, f"{url.namespace}_task_evp")
        ensure_index(records, "pend", aerospike.INDEX_NUMERIC, f"{url.namespace}_event_pend")

    def _active_hooks(self, customer_id: str) -> list[dict[str, Any]]:
        found = self._records.get(self._customers, customer_id)
        hooks = []
        for webhook_id in (found[0].get("hooks") if found else None) or {}:
            hook = self._records.get(self._webhooks, webhook_id)
            if hook is not None and hook[0].get("active") == 1:
                hooks.append(hook[0])
        return hooks

    def has_active_webhook(self, customer_id: str) -> bool:
        return bool(self._active_hooks(customer_id))

    def is_registered(self, customer_id: str, callback_url: str) -> bool:
        """An active webhook of the customer's has this URL (a task's `callback_url` must)."""
        return any(h["url"] == callback_url for h in self._active_hooks(customer_id))

    def emit(self, task_id: str) -> None:
        """Each marked event of the task as an event record (only for a customer with an active
        webhook, as on SQLite), then the marks cleared if nobody marked more meanwhile. The
        task's counters first: every change that marks an event is counted (counters.py)."""
        self.counts.follow_up(task_id)
        for _ in range(16):
            found = self._records.get(self._tasks, task_id)
            if found is None or not found[0].get("ev"):
                return
            bins, gen = found
            hooked = self.has_active_webhook(bins["owner"])
            for event_type, at in sorted(bins["ev"].items(), key=lambda item: item[1]):
                key = f"{task_id}:{event_type}"
                if hooked and self._records.get(self._events, key) is None:
                    self._records.create(
                        self._events,
                        key,
                        {
                            "eid": ids.new_id("evt", at),
                            "type": event_type,
                            "owner": bins["owner"],
                            "subject": task_id,
                            "callback": bins.get("callback"),
                            "created": at,
                            "pend": self._next_seq(),
                        },
                    )
            if self._clear(task_id, gen):
                return
            # changed meanwhile (maybe a new mark): emit again, harmlessly

    def emit_many(self, task_ids: list[str]) -> None:
        """`emit` for many tasks changed at once (a payout's settled tasks): their counters in
        batches (`Counts.follow_up_many`), one batch read, and for customers without an
        active webhook (no event record is written for them, as on SQLite) the marks cleared
        in one batch write, each by compare-and-set on the generation read. A task of a
        hooked customer, or one changed meanwhile, goes through `emit` on its own."""
        if len(task_ids) == 1:  # a one-task payout: single writes cost less than batches
            self.emit(task_ids[0])
            return
        self.counts.follow_up_many(task_ids)
        hooked: dict[str, bool] = {}
        clear = [ops.write("ev", None), ops.write("evp", None)]
        clears: list[Write] = []
        alone: list[str] = []
        keys = [self._records.key(self._tasks, task_id) for task_id in task_ids]
        for task_id, (key, meta, bins) in zip(task_ids, read_in_chunks(self._records, keys), strict=True):
            if meta is None or not bins.get("ev"):
                continue
            owner = bins["owner"]
            if owner not in hooked:
                hooked[owner] = self.has_active_webhook(owner)
            if hooked[owner]:
                alone.append(task_id)
            else:
                clears.append(Write(key, clear, {"gen": meta["gen"]}, dict(GEN_EQ)))
        for write, row in zip(clears, write_in_chunks(self._records, clears), strict=True):
            if row.result != 0:  # changed meanwhile (maybe a new mark): emit it again, harmlessly
                alone.append(write.key[2])
        for task_id in alone:
            self.emit(task_id)

    def _clear(self, task_id: str, gen: int) -> bool:
        client, full_key = self._records.client, self._records.key(self._tasks, task_id)
        clear = [ops.write("ev", None), ops.write("evp", None)]
        try:
            self._records.retry(lambda: client.operate(full_key, clear, {"gen": gen}, dict(GEN_EQ)))
        except aex.RecordGenerationError:
            return False
        return True

    def _next_seq(self) -> int:
        client, key = self._records.client, self._records.key(self._counters, EVENT_COUNTER)
        operations = [ops.increment("seq", 1), ops.read("seq")]
        _, _, bins = self._records.retry(lambda: client.operate(key, operations))
        return int(bins["seq"])

    def repair(self) -> None:
        self.counts.repair()
        for bins in query(self._records, self._tasks, predicates.equals("evp", 1)):
            self.emit(bins["tid"])
