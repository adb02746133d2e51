"""Batch jobs on Aerospike: the job record, one item record per manifest line, and the tasks
the lines become (written by the task submission's own steps, tasks.py).

Each state change is one single-record write; a chunk's lines are taken one by one, each
through an item record written CREATE_ONLY before its task (the line's claim), so a chunk cut
off halfway is finished by its replay (the runner re-reads from the job's committed `lines`).
The layout and the invariants are in docs/storage-aerospike.md (Jobs).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain import ids
from asg_grpc.domain.errors import (
    Conflict,
    IdempotencyConflict,
    QuotaExhausted,
    Unavailable,
    UnregisteredWebhook,
    ValidationError,
)
from asg_grpc.domain.jobs import MAX_ERRORS_KEPT, Job, JobCounts, JobSpec, JobStatus, ManifestItem
from asg_grpc.domain.tasks import DEFAULT_LABOR, TaskStatus
from asg_grpc.store.aerospike.connection import AerospikeUrl
from asg_grpc.store.aerospike.records import GEN_EQ, UPDATE_ONLY, Records, ensure_index, query
from asg_grpc.store.job_records import ChunkOutcome, ExportRow, IngestChunk, JobPage, JobWork

if TYPE_CHECKING:
    from asg_grpc.store.aerospike.tasks import AerospikeTasks

MAX_INT = 2**63 - 1
ENDED = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)
OPEN_STATUSES = {TaskStatus.PENDING.value, TaskStatus.IN_PROGRESS.value, TaskStatus.VERIFIED.value}
READ_BATCH = 500  # item records per batch read


def _ms(at: float) -> int:
    return int(at * 1000)


def _spec(b: dict[str, Any]) -> JobSpec:
    return JobSpec(
        b["manifest"],
        b["type"],
        b["question"],
        tuple(b["options"]),
        b["threshold"],
        b.get("callback"),
        b.get("labor", DEFAULT_LABOR),  # absent: "any" (and jobs stored before labor)
    )


def _summary(b: dict[str, Any]) -> Job:
    return Job(
        job_id=b["jid"],
        customer_id=b["owner"],
        status=JobStatus(b["status"]),
        spec=_spec(b),
        counts=JobCounts(
            lines=b["lines"],
            tasks_created=b["ncreated"],
            tasks_reused=b["nreused"],
            invalid_lines=b["ninvalid"],
        ),
        errors=(),
        failure_reason=b.get("freason"),
        created_at=b["created"],
        updated_at=b["updated"],
        completed_at=b.get("completed"),
    )


class AerospikeJobs:
    """The jobs part of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, tasks: AerospikeTasks) -> None:
        self._jrecords = Records(client, url.namespace)
        self._jns = url.namespace
        self._jtasks = tasks
        self._jobs = url.set_prefix + "jobs"
        self._jitems = url.set_prefix + "job_items"
        self._jpointers = url.set_prefix + "job_tasks"
        self._jtaskset = url.set_prefix + "tasks"
        self._jcustomers = url.set_prefix + "customers"
        self._jevents = url.set_prefix + "events"
        # `jq`: the job's creation (ms) while it is not ended: what the runner reads.
        ensure_index(self._jrecords, "jq", aerospike.INDEX_NUMERIC, f"{url.namespace}_job_open")

    # reads -----------------------------------------------------------------------------------

    def create_job(
        self, job_id: str, customer_id: str, spec: JobSpec, sealed_credentials: bytes | None, now: float
    ) -> Job:
        if spec.callback_url is not None and not self._jtasks._toutbox.is_registered(
            customer_id, spec.callback_url
        ):
            raise UnregisteredWebhook()
        bins: dict[str, Any] = {
            "jid": job_id,
            "owner": customer_id,
            "status": JobStatus.PENDING.value,
            "manifest": spec.manifest_url,
            "type": spec.task_type,
            "question": spec.question,
            "options": list(spec.options),
            "threshold": spec.consensus_threshold,
            "lines": 0,
            "offset": 0,
            "ncreated": 0,
            "nreused": 0,
            "ninvalid": 0,
            "created": now,
            "updated": now,
            "jq": _ms(now),
        }
        if spec.callback_url is not None:
            bins["callback"] = spec.callback_url
        if spec.labor != DEFAULT_LABOR:
            bins["labor"] = spec.labor
        if sealed_credentials is not None:
            bins["sealed"] = bytearray(sealed_credentials)
        if not self._jrecords.create(self._jobs, job_id, bins):
            raise Conflict(f"job {job_id} exists")
        return Job(job_id, customer_id, JobStatus.PENDING, spec, JobCounts(), (), None, now, now, None)

    def _job(self, job_id: str) -> tuple[dict[str, Any], int] | None:
        return self._jrecords.get(self._jobs, job_id)

    def get_job(self, customer_id: str, job_id: str) -> Job | None:
        found = self._job(job_id)
        if found is None or found[0]["owner"] != customer_id:
            return None
        bins = found[0]
        # Tasks the job created carry its id as batch (the `batch` index); reused ones (other
        # batches' tasks, by idempotency key) are listed in `rtids` and read by key.
        statuses = [
            r["status"]
            for r in query(self._jrecords, self._jtaskset, predicates.equals("batch", job_id))
            if r.get("owner") == customer_id
        ]
        reused = list((bins.get("rtids") or {}).keys())
        for start in range(0, len(reused), READ_BATCH):
            keys = [self._jrecords.key(self._jtaskset, t) for t in reused[start : start + READ_BATCH]]
            for _, meta, task in self._get_many(keys):
                if meta is not None and task.get("batch") != job_id:
                    statuses.append(task["status"])
        count = {s: statuses.count(s) for s in set(statuses)}
        summary = _summary(bins)
        counts = summary.counts.with_ended(count)
        errors = tuple(sorted((int(line), msg) for line, msg in (bins.get("errs") or {}).items()))
        return replace(summary, counts=counts, errors=errors)

    def list_jobs(self, customer_id: str, *, limit: int, after_job_id: str | None) -> JobPage:
        """Newest first (ids start with their creation time), through the `owner` index; a
        customer's jobs are few (each is a whole manifest), so they are sorted here."""
        if after_job_id is not None:
            found = self._job(after_job_id)
            if found is None or found[0]["owner"] != customer_id:
                raise ValidationError("cursor", "is not a cursor this API returned")
        rows = query(self._jrecords, self._jobs, predicates.equals("owner", customer_id))
        rows = sorted(
            (r for r in rows if after_job_id is None or r["jid"] < after_job_id),
            key=lambda r: r["jid"],
            reverse=True,
        )
        jobs = [_summary(r) for r in rows[:limit]]
        return JobPage(jobs, jobs[-1].job_id if len(rows) > limit else None)

    def _open_jobs(self) -> list[dict[str, Any]]:
        """Jobs not ended, oldest first; emits first the end events a crash left marked."""
        for bins in query(self._jrecords, self._jobs, predicates.equals("evp", 1)):
            self._emit(bins["jid"])
        rows = query(self._jrecords, self._jobs, predicates.between("jq", 0, MAX_INT))
        return sorted((r for r in rows if r["status"] not in ENDED), key=lambda r: r["created"])

    def jobs_to_ingest(self) -> list[JobWork]:
        return [
            JobWork(
                r["jid"],
                r["owner"],
                JobStatus(r["status"]),
                _spec(r),
                None if r.get("sealed") is None else bytes(r["sealed"]),
                r["lines"],
                r["offset"],
            )
            for r in self._open_jobs()
            if r["status"] in (JobStatus.PENDING.value, JobStatus.INGESTING.value)
        ]

    def jobs_labeling(self) -> list[str]:
        return [r["jid"] for r in self._open_jobs() if r["status"] == JobStatus.LABELING.value]

    # changes ---------------------------------------------------------------------------------

    def _job_op(self, job_id: str, operations: list[Any], expression: Any) -> bool:
        """One operate on the job record, filtered; False when filtered out or absent."""
        client, key = self._jrecords.client, self._jrecords.key(self._jobs, job_id)
        policy = {"expressions": expression.compile(), "exists": aerospike.POLICY_EXISTS_UPDATE}
        try:
            self._jrecords.retry(lambda: client.operate(key, operations, policy=policy))
        except (aex.FilteredOut, aex.RecordNotFound):
            return False
        return True

    def start_ingesting(self, job_id: str, now: float) -> None:
        self._job_op(
            job_id,
            [ops.write("status", JobStatus.INGESTING.value), ops.write("updated", now)],
            exp.Eq(exp.StrBin("status"), JobStatus.PENDING.value),
        )

    def ingest_chunk(self, job_id: str, chunk: IngestChunk, now: float) -> ChunkOutcome:
        found = self._job(job_id)
        if found is None or found[0]["status"] != JobStatus.INGESTING.value:
            raise Conflict(f"job {job_id} is not ingesting")
        job = found[0]
        lines_before = job["lines"]
        invalid = list(chunk.invalid)
        created: list[str] = []
        reused: dict[str, int] = {}
        stop: tuple[int, str] | None = None
        for line, item in chunk.items:
            taken = self._take_line(job, line, item, now)
            if isinstance(taken, str):  # the line is invalid: why
                invalid.append((line, taken))
            elif isinstance(taken, QuotaExhausted):
                stop = (line, taken.hint)
                break
            elif taken[1]:
                reused[taken[0]] = line
            else:
                created.append(taken[0])
        if stop is not None:
            invalid = [(line, message) for line, message in invalid if line < stop[0]]
        kept = max(0, MAX_ERRORS_KEPT - job["ninvalid"])
        operations: list[Any] = [
            ops.write("lines", chunk.lines_after if stop is None else stop[0] - 1),
            ops.increment("ncreated", len(created)),
            ops.increment("nreused", len(reused)),
            ops.increment("ninvalid", len(invalid)),
            ops.write("updated", now),
        ]
        if stop is None:
            operations.append(ops.write("offset", chunk.offset_after))
        operations += [mops.map_put("errs", line, message) for line, message in sorted(invalid)[:kept]]
        operations += [mops.map_put("rtids", tid, line) for tid, line in reused.items()]
        # Applied once: a replay of a chunk whose progress was written is filtered out here.
        applied = self._job_op(
            job_id,
            operations,
            exp.And(
                exp.Eq(exp.IntBin("lines"), lines_before),
                exp.Eq(exp.StrBin("status"), JobStatus.INGESTING.value),
            ),
        )
        if not applied:
            raise Conflict(f"job {job_id} is not ingesting")
        outcome = ChunkOutcome(len(created), len(reused))
        if stop is not None:
            reason = (
                f"quota exhausted at line {stop[0]}: {job['ncreated'] + outcome.created} tasks"
                " were created and are kept; raise the label quota and submit the remaining lines"
                f" as a new job ({stop[1]})"
            )
            self._end_job(job_id, JobStatus.FAILED, reason, now)
            return ChunkOutcome(outcome.created, outcome.reused, reason)
        if chunk.last:
            if job["ncreated"] + job["nreused"] + outcome.created + outcome.reused:
                self._job_op(
                    job_id,
                    [ops.write("status", JobStatus.LABELING.value), ops.write("sealed", None)],
                    exp.Eq(exp.StrBin("status"), JobStatus.INGESTING.value),
                )
            else:
                reason = (
                    "the manifest is empty"
                    if chunk.lines_after == 0
                    else "the manifest has no valid lines (see errors)"
                )
                self._end_job(job_id, JobStatus.FAILED, reason, now)
                return ChunkOutcome(0, 0, reason)
        return outcome

    def _take_line(
        self, job: dict[str, Any], line: int, manifest_item: ManifestItem, now: float
    ) -> tuple[str, bool] | str | QuotaExhausted:
        """(task id, reused) for a line taken; the message for an invalid one; QuotaExhausted
        (nothing kept of the line) when its labels do not fit. Replayable: the item record
        `<job>:<line>` is the line's claim, and its `st` says how far the steps got."""
        job_id, customer_id, tasks = job["jid"], job["owner"], self._jtasks
        spec = manifest_item.spec
        key = f"{job_id}:{line}"
        found = self._jrecords.get(self._jitems, key)
        if found is None:
            task_id = ids.new_id("tsk", now)
            replay = False
            if spec.idempotency_key is not None:
                try:
                    [claim] = tasks._claim(customer_id, [spec], [task_id], False, now)
                except IdempotencyConflict:
                    return "idempotency_key was already used for a different task"
                task_id, replay = claim.task_id, claim.replay
            if replay and tasks._records.get(tasks._tasks, task_id) is None:
                raise Unavailable("the task of this idempotency key is being written; retry shortly")
            # One line per task in a job: the pointer's first writer is the line it names.
            if spec.idempotency_key is not None and not self._jrecords.create(
                self._jpointers, f"{job_id}:{task_id}", {"line": line}
            ):
                earlier = self._jrecords.get(self._jpointers, f"{job_id}:{task_id}")
                if earlier is not None and earlier[0]["line"] != line:
                    return f"idempotency_key repeats line {earlier[0]['line']}"
            item: dict[str, Any] = {
                "tid": task_id,
                "kind": "reused" if replay else "created",
                "st": "done" if replay else "claimed",
            }
            if manifest_item.metadata is not None:
                item["meta"] = manifest_item.metadata
            if not self._jrecords.create(self._jitems, key, {**item, "job": job_id, "line": line}):
                found = self._jrecords.get(self._jitems, key)  # an earlier try of ours wrote it
            else:
                found = (item, 1)
        assert found is not None
        item = found[0]
        if item["st"] == "done":
            return item["tid"], item["kind"] == "reused"
        if item["st"] == "claimed":
            try:
                tier, seq = tasks._reserve(customer_id, spec.consensus_threshold, 1)
            except QuotaExhausted as exc:
                self._jrecords.remove(self._jitems, key)
                if spec.idempotency_key is not None:
                    tasks._release_claims(customer_id, [spec], [0])
                return exc
            item = {**item, "st": "reserved", "seq": seq, "tier": tier}
            self._jrecords.put(self._jitems, key, item, UPDATE_ONLY)
        tasks.write_tasks(customer_id, [(item["tid"], spec)], job_id, item.get("tier"), item["seq"], now)
        self._jrecords.put(self._jitems, key, {**item, "st": "done"}, UPDATE_ONLY)
        return item["tid"], False

    def _end_job(
        self, job_id: str, status: JobStatus, reason: str | None, now: float, *, only: str | None = None
    ) -> bool:
        """Completed or failed, credentials erased and the event marked, in one filtered write;
        then the event emitted (replayed by `_open_jobs` after a crash)."""
        event = f"job.{status.value}"
        operations = [
            ops.write("status", status.value),
            ops.write("sealed", None),
            ops.write("updated", now),
            ops.write("completed", now),
            ops.write("jq", None),
            mops.map_put("ev", event, now),
            ops.write("evp", 1),
        ]
        if reason is not None:
            operations.append(ops.write("freason", reason))
        guard = (
            exp.Eq(exp.StrBin("status"), only)
            if only is not None
            else exp.And(*(exp.NE(exp.StrBin("status"), s) for s in ENDED))
        )
        if not self._job_op(job_id, operations, guard):
            return False
        self._emit(job_id)
        return True

    def _emit(self, job_id: str) -> None:
        """The job's marked events as event records (key `<job>:<type>`, CREATE_ONLY: once,
        however often replayed), for a customer with an active webhook; then the marks cleared."""
        found = self._job(job_id)
        if found is None or not found[0].get("ev"):
            return
        bins, gen = found
        outbox = self._jtasks._toutbox
        if outbox.has_active_webhook(bins["owner"]):
            for event_type, at in bins["ev"].items():
                key = f"{job_id}:{event_type}"
                if self._jrecords.get(self._jevents, key) is None:
                    record = {
                        "eid": ids.new_id("evt", at),
                        "type": event_type,
                        "owner": bins["owner"],
                        "subject": job_id,
                        "created": at,
                        "pend": outbox._next_seq(),
                    }
                    if bins.get("callback") is not None:
                        record["callback"] = bins["callback"]
                    self._jrecords.create(self._jevents, key, record)
        client, full_key = self._jrecords.client, self._jrecords.key(self._jobs, job_id)
        clear = [ops.write("ev", None), ops.write("evp", None)]
        # Changed meanwhile: the next _open_jobs emits again, harmlessly.
        with contextlib.suppress(aex.RecordGenerationError):
            self._jrecords.retry(lambda: client.operate(full_key, clear, {"gen": gen}, dict(GEN_EQ)))

    def fail_job(self, job_id: str, reason: str, now: float) -> None:
        self._end_job(job_id, JobStatus.FAILED, reason, now)

    def complete_job(self, job_id: str, now: float) -> bool:
        return self._end_job(job_id, JobStatus.COMPLETED, None, now, only=JobStatus.LABELING.value)

    # lines -----------------------------------------------------------------------------------

    def _get_many(self, keys: list[Any]) -> list[tuple[Any, Any, Any]]:
        return self._jrecords.get_many(keys)

    def _lines(self, job_id: str, after_line: int) -> Any:
        """(line, item, task) in manifest order after `after_line`, read by key in batches."""
        found = self._job(job_id)
        if found is None:
            return
        total = found[0]["lines"]
        line = after_line
        while line < total:
            numbers = range(line + 1, min(total, line + READ_BATCH) + 1)
            keys = [self._jrecords.key(self._jitems, f"{job_id}:{n}") for n in numbers]
            items = [
                (n, b)
                for n, (_, m, b) in zip(numbers, self._get_many(keys), strict=True)
                if m is not None and b.get("st") == "done"
            ]
            tkeys = [self._jrecords.key(self._jtaskset, b["tid"]) for _, b in items]
            tasks = self._get_many(tkeys) if tkeys else []
            for (n, b), (_, meta, t) in zip(items, tasks, strict=True):
                if meta is not None:
                    yield n, b, t
            line = numbers[-1]

    def first_open_line(self, job_id: str, from_line: int) -> int | None:
        for line, _, task in self._lines(job_id, from_line - 1):
            if task["status"] in OPEN_STATUSES:
                return int(line)
        return None

    def export_rows(self, job_id: str, after_line: int, limit: int) -> list[ExportRow]:
        rows: list[ExportRow] = []
        for line, item, t in self._lines(job_id, after_line):
            if len(rows) == limit:
                break
            rows.append(
                ExportRow(
                    line,
                    item["tid"],
                    t["url"],
                    item.get("meta"),
                    t["status"],
                    t.get("label"),
                    t.get("conf"),
                    t.get("wcount"),
                    t.get("acount"),
                    t.get("txid"),
                )
            )
        return rows
