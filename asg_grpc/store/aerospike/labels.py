"""Workers, labels, skips and decisions on Aerospike, with the same behaviour as SQLiteStore's.

A task's labels and skips are map bins of its own record, so everything one flush changes about
a task (its status, label target, verdict, new labels and skips) is one `operate` on one
record, filtered by "not decided yet": two dispatchers racing one decision cannot both win, and
a label for a task closed meanwhile is never stored. Ending a task (cancel, deadline) gives
back the quota it did not use through an idempotent follow-up on the customer record, marked
in the task record first so a crash in between is finished by replay (docs/storage-aerospike.md).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.batch.records import Write
from aerospike_helpers.operations import expression_operations as eops
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain import consensus
from asg_grpc.domain.errors import Conflict, NotFound, NotReady, Unavailable
from asg_grpc.domain.labeling import OpenTask, labels_beyond_reserved
from asg_grpc.domain.tasks import LabelRecord, Task, TaskStatus
from asg_grpc.domain.workers import Worker, WorkerRegistration
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.counters import dirty, read_counted, write_in_chunks
from asg_grpc.store.aerospike.outbox import Outbox, mark
from asg_grpc.store.aerospike.records import GEN_EQ, UPDATE_ONLY, Records, ensure_index, query, refused
from asg_grpc.store.aerospike.tasks import _task, due_ms
from asg_grpc.store.task_records import LabelingBatch

# Map writes that keep an entry already there (a worker's first label wins, as SQLite's
# INSERT OR IGNORE) and never fail the operate over it.
_KEEP_FIRST = {
    "map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY
    | aerospike.MAP_WRITE_FLAGS_NO_FAIL
    | aerospike.MAP_WRITE_FLAGS_PARTIAL
}
_UNDECIDED = exp.Not(exp.BinExists("decided")).compile()
_GSEQ = exp.IntBin("gseq").compile()
MAX_INT = 2**63 - 1
CAS_ROUNDS = 16


class AerospikeLabels:
    """Workers and labeling of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None) -> None:
        self._lrecords = records = Records(client, url.namespace, retry)
        self._ltasks = url.set_prefix + "tasks"
        self._lcustomers = url.set_prefix + "customers"
        self._workers = url.set_prefix + "workers"
        self._tokens = url.set_prefix + "worker_tokens"
        self._loutbox = Outbox(records, url)
        ensure_index(records, "due", aerospike.INDEX_NUMERIC, f"{url.namespace}_task_due")
        ensure_index(records, "rel", aerospike.INDEX_NUMERIC, f"{url.namespace}_task_rel")

    def _operate(
        self,
        set_name: str,
        key: str,
        operations: list[Any],
        policy: dict[str, Any] | None = None,
        *,
        gen: int | None = None,
    ) -> Any:
        """One atomic operate; `gen` is the generation a GEN_EQ policy expects."""
        client, full_key = self._lrecords.client, self._lrecords.key(set_name, key)
        meta = None if gen is None else {"gen": gen}
        return self._lrecords.retry(lambda: client.operate(full_key, operations, meta, policy or {}))

    # workers -------------------------------------------------------------------------------

    def create_worker(self, registration: WorkerRegistration, *, token_hash: str, now: float) -> Worker:
        """Token pointer first (CREATE_ONLY: a token names one worker), then the worker record,
        which names its token: a pointer whose worker does not name it back is trusted by nobody."""
        worker = registration.worker(now)
        if not self._lrecords.create(self._tokens, token_hash, {"wid": worker.worker_id}):
            found = self._lrecords.get(self._tokens, token_hash)
            if found is None or found[0]["wid"] != worker.worker_id:
                raise Conflict("this worker token is registered already")
        bins = {
            "wid": worker.worker_id,
            "name": worker.name,
            "payout": worker.payout_address,
            "types": list(worker.task_types),
            "token": token_hash,
            "created": now,
        }
        if worker.challenge_gateway:  # absent: not one (records written before the field)
            bins["cgw"] = 1
        self._lrecords.create(self._workers, worker.worker_id, bins)
        return worker

    def worker_for_token(self, token_hash: str) -> Worker | None:
        pointer = self._lrecords.get(self._tokens, token_hash)
        if pointer is None:
            return None
        found = self._lrecords.get(self._workers, pointer[0]["wid"])
        if found is None or found[0]["token"] != token_hash or found[0].get("revoked") is not None:
            return None
        b = found[0]
        return Worker(b["wid"], b["name"], b["payout"], tuple(b["types"]), b["created"], bool(b.get("cgw")))

    def workers(self) -> list[Worker]:
        """A scan of the worker set (one record per registered worker: few)."""
        scan = self._lrecords.client.query(self._lrecords.namespace, self._workers)
        found = self._lrecords.retry(scan.results)
        return [
            Worker(b["wid"], b["name"], b["payout"], tuple(b["types"]), b["created"], bool(b.get("cgw")))
            for _, _, b in found
            if b.get("revoked") is None
        ]

    # labels ------------------------------------------------------------------------------

    def task_labels(self, task_id: str) -> list[LabelRecord]:
        found = self._lrecords.get(self._ltasks, task_id)
        labels: dict[str, list[Any]] = (found[0].get("labels") if found else None) or {}
        records = [LabelRecord(worker, option, at) for worker, (option, at) in labels.items()]
        return sorted(records, key=lambda r: r.created_at)

    def record_labeling(self, batch: LabelingBatch) -> set[str]:
        """Per task one filtered write: state, verdict, labels and skips together, or nothing
        when the task was decided meanwhile (then it is in the answer). All of a flush's task
        writes go in batch calls (each record's write still atomic and filtered on its own),
        then the counting of the changed tasks in one batch call per step
        (`Counts.apply_changed`): a flush costs a handful of round trips, not ~10 per task."""
        labels: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        for task_id, worker_id, option, at in batch.labels:
            labels[task_id].setdefault(worker_id, [option, at])
        skips: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        for task_id, worker_id, reason, at in batch.skips:
            skips[task_id].setdefault(worker_id, [reason, at])
        changing = {t.task_id: t for t in batch.tasks}
        writes: list[Write] = []
        for task in batch.tasks:
            operations = _state_ops(task, batch.now)
            if task.task_id in labels:
                operations.append(mops.map_put_items("labels", labels[task.task_id], _KEEP_FIRST))
            if task.task_id in skips:
                operations.append(mops.map_put_items("skips", skips[task.task_id], _KEEP_FIRST))
            if task.status.decided:  # the webhook event, marked in the same write
                event = "task.verified" if task.status is TaskStatus.VERIFIED else "task.failed"
                operations.extend(mark(event, batch.now))
            operations += [*read_counted(), ops.read("ev")]  # what the follow-ups need: no read
            key = self._lrecords.key(self._ltasks, task.task_id)
            writes.append(Write(key, operations, policy={"expressions": _UNDECIDED, **UPDATE_ONLY}))
        # Labels and skips of tasks whose state did not change, in the same batch.
        unchanged = sorted((set(labels) | set(skips)) - set(changing))
        for task_id in unchanged:
            operations = [
                mops.map_put_items(name, found[task_id], _KEEP_FIRST)
                for name, found in (("labels", labels), ("skips", skips))
                if task_id in found
            ]
            writes.append(
                Write(self._lrecords.key(self._ltasks, task_id), operations, policy=dict(UPDATE_ONLY))
            )
        answers = write_in_chunks(self._lrecords, writes)
        for row in answers[len(batch.tasks) :]:
            if row.result not in (0, aex.RecordNotFound.code):
                raise refused(row.result)
        closed: set[str] = set()
        changed: list[tuple[str, dict[str, Any], int]] = []
        one_by_one: list[str] = []  # ours, applied by a try reported as timed out
        for task, row in zip(batch.tasks, answers, strict=False):
            if row.result == 0:
                _, meta, bins = row.record
                changed.append((task.task_id, {k: v for k, v in bins.items() if v is not None}, meta["gen"]))
            elif row.result not in (aex.FilteredOut.code, aex.RecordNotFound.code):
                raise refused(row.result)  # the flush is retried whole: every write above repeats
            elif self._decided_by(task, batch.now):
                one_by_one.append(task.task_id)
            else:
                closed.add(task.task_id)
        # Skips of closed tasks are kept (as on SQLite; they never matter again), labels not.
        for task_id in sorted(closed & set(skips)):
            with contextlib.suppress(aex.RecordNotFound):
                self._operate(
                    self._ltasks,
                    task_id,
                    [mops.map_put_items("skips", skips[task_id], _KEEP_FIRST)],
                    dict(UPDATE_ONLY),
                )
        self._take_extra_labels([changing[t] for t, _, _ in changed] + [changing[t] for t in one_by_one])
        # Marks of customers without an active webhook make no event (as Outbox.emit): they
        # are cleared by the counting's first step, which holds exactly when the task is
        # still as read back. Tasks of customers with one are emitted one by one.
        marked = {bins["owner"] for _, bins, _ in changed if bins.get("ev")}
        hooked = {customer_id for customer_id in marked if self._loutbox.has_active_webhook(customer_id)}
        clear = [ops.write("ev", None), ops.write("evp", None)]
        step_one = {t: clear for t, bins, _ in changed if bins.get("ev") and bins["owner"] not in hooked}
        left = self._loutbox.counts.apply_changed(changed, step_one)
        for task_id, bins, _ in changed:
            if task_id in left or (bins.get("ev") and bins["owner"] in hooked):
                self._loutbox.emit(task_id)  # its counters, and its event when marked
        for task_id in one_by_one:
            self._loutbox.emit(task_id)
        return closed

    def _take_extra_labels(self, written: list[OpenTask]) -> None:
        """Labels a decision bought beyond the reservation are billed, so counted in the quota
        too (docs/billing.md): one increment per customer, after the tasks' writes, which
        succeed once: a crash between the two leaves these labels off the quota (still
        billed), never counts them twice."""
        extra: dict[str, int] = defaultdict(int)
        for task in written:
            extra[task.customer_id] += labels_beyond_reserved(task)
        for customer_id, amount in sorted(extra.items()):
            if amount:
                with contextlib.suppress(aex.RecordNotFound):
                    self._operate(self._lcustomers, customer_id, [ops.increment("reserved", amount)])

    def _decided_by(self, task: OpenTask, now: float) -> bool:
        """After a refused write: was it ours, applied by a try reported as timed out?"""
        if not task.status.decided:
            return False
        found = self._lrecords.get(self._ltasks, task.task_id)
        if found is None:
            return False
        return found[0].get("decided") == now and found[0]["status"] == task.status.value

    # ending tasks ------------------------------------------------------------------------

    def cancel_task(self, customer_id: str, task_id: str, now: float) -> Task:
        for _ in range(CAS_ROUNDS):
            found = self._lrecords.get(self._ltasks, task_id)
            if found is None or found[0]["owner"] != customer_id:
                raise NotFound("task not found")
            bins, gen = found
            status = TaskStatus(bins["status"])
            if status.decided and status is not TaskStatus.CANCELLED:
                raise NotReady(
                    f"task is already {status.value}; only a task not decided yet can be cancelled"
                )
            if status is TaskStatus.CANCELLED:
                if bins.get("rel"):  # a crash's leftover, or a concurrent cancel: finish it
                    self._give_back(task_id, customer_id, bins["rel"])
                return _task(self._lrecords.get(self._ltasks, task_id)[0])  # type: ignore[index]
            if self._end(task_id, bins, gen, TaskStatus.CANCELLED, now):
                return _task(self._lrecords.get(self._ltasks, task_id)[0])  # type: ignore[index]
        raise Unavailable("the task is being changed; retry shortly")

    def expire_due(self, now: float, limit: int = 500) -> list[str]:
        """Undecided tasks past their deadline end `expired`, soonest first. Also finishes the
        quota give-backs a crash interrupted (the `rel` index), since this runs periodically."""
        for bins in query(self._lrecords, self._ltasks, predicates.between("rel", 1, MAX_INT)):
            self._give_back(bins["tid"], bins["owner"], bins["rel"])
        rows = query(self._lrecords, self._ltasks, predicates.between("due", 0, due_ms(now)))
        rows = [r for r in rows if "decided" not in r and r.get("expires", now + 1) <= now]
        rows.sort(key=lambda r: r["expires"])
        ended: list[str] = []
        for row in rows[:limit]:
            for _ in range(CAS_ROUNDS):
                found = self._lrecords.get(self._ltasks, row["tid"])
                if found is None or "decided" in found[0]:
                    break
                if self._end(row["tid"], found[0], found[1], TaskStatus.EXPIRED, now):
                    ended.append(row["tid"])
                    break
        return ended

    def _end(self, task_id: str, bins: dict[str, Any], gen: int, status: TaskStatus, now: float) -> bool:
        """Step 1, compare-and-set on the task: ended where it stands, its labels its worker
        count, and `rel` = the quota to give back. False when somebody wrote it meanwhile."""
        workers = len(bins.get("labels") or {})
        give_back = max(0, bins["threshold"] - workers)
        operations = [
            ops.write("status", status.value),
            ops.write("freason", status.value),
            ops.write("conf", 0.0),
            ops.write("acount", 0),
            ops.write("wcount", workers),
            ops.write("decided", now),
            ops.write("updated", now),
            ops.write("open", None),
            ops.write("due", None),
        ]
        if give_back:
            operations.append(ops.write("rel", give_back))
        if workers:  # its labels are paid (settlement.py)
            operations.append(ops.write("topay", bins["gseq"]))
        operations.extend(mark(f"task.{status.value}", now))
        try:
            self._operate(self._ltasks, task_id, operations, dict(GEN_EQ), gen=gen)
        except aex.RecordGenerationError:
            return False
        if give_back:
            self._give_back(task_id, bins["owner"], give_back)
        self._loutbox.emit(task_id)
        return True

    def _give_back(self, task_id: str, customer_id: str, amount: int) -> None:
        """Steps 2-4, each safe to repeat: the customer's `reserved` decremented once per task
        (the `released` map remembers the task until step 4), the task's mark cleared, the
        customer's memory of it dropped."""
        not_yet = exp.Or(
            exp.Not(exp.BinExists("released")),
            exp.Not(
                exp.MapGetByKey(
                    None, aerospike.MAP_RETURN_EXISTS, exp.ResultType.BOOLEAN, task_id, exp.MapBin("released")
                )
            ),
        ).compile()
        with contextlib.suppress(aex.FilteredOut, aex.RecordNotFound):
            self._operate(
                self._lcustomers,
                customer_id,
                [ops.increment("reserved", -amount), mops.map_put("released", task_id, amount)],
                {"expressions": not_yet, **UPDATE_ONLY},
            )
        self._operate(self._ltasks, task_id, [ops.write("rel", None)])
        with contextlib.suppress(aex.RecordNotFound):
            self._operate(
                self._lcustomers,
                customer_id,
                [mops.map_remove_by_key("released", task_id, aerospike.MAP_RETURN_NONE)],
            )


def _state_ops(task: OpenTask, now: float) -> list[Any]:
    """The task's state as the dispatcher has it now (SQLite's _task_state_row)."""
    operations = [
        ops.write("status", task.status.value),
        ops.write("target", task.target),
        ops.write("updated", now),
        dirty(),  # its status counts (counters.py)
    ]
    outcome = task.outcome
    verdict: dict[str, Any] | None = None
    if isinstance(outcome, consensus.Decided):
        verdict = {
            "label": outcome.label,
            "conf": outcome.confidence,
            "wcount": outcome.worker_count,
            "acount": outcome.agreement_count,
        }
    elif isinstance(outcome, consensus.NoConsensus):
        verdict = {"conf": 0.0, "wcount": outcome.worker_count, "acount": 0, "freason": outcome.reason}
    if verdict is not None:
        verdict.update({"decided": now, "open": None, "due": None})
        operations.extend(ops.write(name, value) for name, value in verdict.items())
    if task.status is TaskStatus.VERIFIED:  # waiting for a payout (settlement.py), by sequence
        operations.append(eops.expression_write("topay", _GSEQ))
    return operations
