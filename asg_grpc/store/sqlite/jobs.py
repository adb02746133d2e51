"""The job tables of the SQLite store: jobs, the task each manifest line became, bad lines.

A chunk's tasks are stored with the tasks area's `insert_tasks` and `find_replays` (tasks.py), in the
chunk's own transaction, as single and batch submission store theirs.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import replace

import orjson

from asg_grpc.domain import ids
from asg_grpc.domain.errors import Conflict, UnregisteredWebhook, ValidationError, quota_hint
from asg_grpc.domain.jobs import MAX_ERRORS_KEPT, Job, JobCounts, JobSpec, JobStatus
from asg_grpc.store.job_records import ChunkOutcome, ExportRow, IngestChunk, JobPage, JobWork
from asg_grpc.store.sqlite.area import Area
from asg_grpc.store.sqlite.tasks import find_replays, insert_tasks
from asg_grpc.store.sqlite.webhooks import is_registered_webhook

_JOB_COLUMNS = (
    "job_id, customer_id, status, manifest_url, task_type, question, options, consensus_threshold,"
    " callback_url, lines, tasks_created, tasks_reused, invalid_lines, failure_reason, created_at,"
    " updated_at, completed_at, labor"
)


def _spec(row: tuple) -> JobSpec:
    return JobSpec(row[3], row[4], row[5], tuple(orjson.loads(row[6])), row[7], row[8], row[17])


def _summary(row: tuple) -> Job:
    """The job as its row has it: no per-status task counts, no errors."""
    return Job(
        job_id=row[0],
        customer_id=row[1],
        status=JobStatus(row[2]),
        spec=_spec(row),
        counts=JobCounts(lines=row[9], tasks_created=row[10], tasks_reused=row[11], invalid_lines=row[12]),
        errors=(),
        failure_reason=row[13],
        created_at=row[14],
        updated_at=row[15],
        completed_at=row[16],
    )


class SQLiteJobs(Area):
    """Batch jobs: manifests read in chunks into tasks, and their export."""

    def create_job(
        self, job_id: str, customer_id: str, spec: JobSpec, sealed_credentials: bytes | None, now: float
    ) -> Job:
        with self._conn.write() as db:
            if spec.callback_url is not None and not is_registered_webhook(
                db, customer_id, spec.callback_url
            ):
                raise UnregisteredWebhook()
            db.execute(
                "INSERT INTO jobs (job_id, customer_id, status, manifest_url, task_type, question, options,"
                " consensus_threshold, callback_url, sealed_credentials, created_at, updated_at, labor)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    customer_id,
                    JobStatus.PENDING.value,
                    spec.manifest_url,
                    spec.task_type,
                    spec.question,
                    orjson.dumps(spec.options).decode(),
                    spec.consensus_threshold,
                    spec.callback_url,
                    sealed_credentials,
                    now,
                    now,
                    spec.labor,
                ),
            )
        return Job(job_id, customer_id, JobStatus.PENDING, spec, JobCounts(), (), None, now, now, None)

    def get_job(self, customer_id: str, job_id: str) -> Job | None:
        row = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ? AND customer_id = ?", (job_id, customer_id)
        ).fetchone()
        if row is None:
            return None
        # The tasks the job created carry its id as batch_id: counted from an index alone.
        # Tasks it reused (idempotency keys) belong to other batches and are added apart.
        by_status: Counter[str] = Counter(
            dict(
                self._db.execute(
                    "SELECT status, count(*) FROM tasks WHERE batch_id = ? GROUP BY status", (job_id,)
                ).fetchall()
            )
        )
        if row[11]:  # tasks_reused
            by_status.update(
                dict(
                    self._db.execute(
                        "SELECT t.status, count(*) FROM job_items j JOIN tasks t ON t.task_id = j.task_id"
                        " WHERE j.job_id = ? AND t.batch_id IS NOT j.job_id GROUP BY t.status",
                        (job_id,),
                    ).fetchall()
                )
            )
        errors = self._db.execute(
            "SELECT line, error FROM job_errors WHERE job_id = ? ORDER BY line", (job_id,)
        ).fetchall()
        summary = _summary(row)
        counts = summary.counts.with_ended(by_status)
        return replace(summary, counts=counts, errors=tuple((line, error) for line, error in errors))

    def list_jobs(self, customer_id: str, *, limit: int, after_job_id: str | None) -> JobPage:
        where, args = "customer_id = ?", [customer_id]
        if after_job_id is not None:
            owned = self._db.execute(
                "SELECT 1 FROM jobs WHERE job_id = ? AND customer_id = ?", (after_job_id, customer_id)
            ).fetchone()
            if owned is None:
                raise ValidationError("cursor", "is not a cursor this API returned")
            where += " AND job_id < ?"  # ids start with their creation time
            args.append(after_job_id)
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY job_id DESC LIMIT ?", (*args, limit + 1)
        ).fetchall()
        jobs = [_summary(r) for r in rows[:limit]]
        return JobPage(jobs, jobs[-1].job_id if len(rows) > limit else None)

    def jobs_to_ingest(self) -> list[JobWork]:
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS}, sealed_credentials, byte_offset FROM jobs"
            " WHERE status IN ('pending', 'ingesting') ORDER BY created_at"
        ).fetchall()
        return [JobWork(r[0], r[1], JobStatus(r[2]), _spec(r), r[18], r[9], r[19]) for r in rows]

    def jobs_labeling(self) -> list[str]:
        rows = self._db.execute("SELECT job_id FROM jobs WHERE status = 'labeling' ORDER BY created_at")
        return [r[0] for r in rows]

    def start_ingesting(self, job_id: str, now: float) -> None:
        with self._conn.write() as db:
            db.execute(
                "UPDATE jobs SET status = 'ingesting', updated_at = ?"
                " WHERE job_id = ? AND status = 'pending'",
                (now, job_id),
            )

    def ingest_chunk(self, job_id: str, chunk: IngestChunk, now: float) -> ChunkOutcome:
        outcome = self._ingest_chunk(job_id, chunk, now)
        if chunk.last or outcome.failure_reason is not None:
            self._conn.truncate_wal()  # the sealed credentials were erased: out of the WAL too
        return outcome

    def _ingest_chunk(self, job_id: str, chunk: IngestChunk, now: float) -> ChunkOutcome:
        with self._conn.write() as db:
            row = db.execute(
                "SELECT customer_id, status, tasks_created, tasks_reused, invalid_lines FROM jobs"
                " WHERE job_id = ?",
                (job_id,),
            ).fetchone()
            if row is None or row[1] != JobStatus.INGESTING.value:
                raise Conflict(f"job {job_id} is not ingesting")
            customer_id, _, created_before, reused_before, invalid_before = row
            specs = [item.spec for _, item in chunk.items]
            replays, conflicts = find_replays(db, customer_id, specs, now, self._conn.idempotency_ttl)
            invalid = list(chunk.invalid)
            for index in conflicts:
                invalid.append(
                    (chunk.items[index][0], "idempotency_key was already used for a different task")
                )
            bad = set(conflicts)
            for index, task in replays.items():
                earlier = db.execute(
                    "SELECT line FROM job_items WHERE job_id = ? AND task_id = ?", (job_id, task.task_id)
                ).fetchone()
                if earlier is not None:
                    invalid.append((chunk.items[index][0], f"idempotency_key repeats line {earlier[0]}"))
                    bad.add(index)
            fresh = [i for i in range(len(specs)) if i not in replays and i not in bad]
            # Quota: lines are taken in order while their tasks fit; the first that does not
            # stops the job there, with the tasks before it kept.
            quota, reserved, tier = db.execute(
                "SELECT label_quota, labels_reserved, tier FROM customers WHERE customer_id = ?",
                (customer_id,),
            ).fetchone()
            remaining = quota - reserved
            stop_line: int | None = None
            needed = 0
            stop_hint = ""
            for index in fresh:
                threshold = specs[index].consensus_threshold
                if needed + threshold > remaining:
                    stop_line = chunk.items[index][0]
                    stop_hint = quota_hint(quota, reserved + needed, threshold, customer_id)
                    break
                needed += threshold
            if stop_line is not None:
                fresh = [i for i in fresh if chunk.items[i][0] < stop_line]
                replays = {i: t for i, t in replays.items() if chunk.items[i][0] < stop_line}
                invalid = [(line, message) for line, message in invalid if line < stop_line]
            if needed:
                db.execute(
                    "UPDATE customers SET labels_reserved = labels_reserved + ? WHERE customer_id = ?",
                    (needed, customer_id),
                )
            created = insert_tasks(db, customer_id, [(i, specs[i]) for i in fresh], job_id, tier, now)
            db.executemany(
                "INSERT INTO job_items (job_id, line, task_id, metadata) VALUES (?, ?, ?, ?)",
                [
                    (job_id, chunk.items[i][0], task.task_id, chunk.items[i][1].metadata)
                    for i, task in (*created.items(), *replays.items())
                ],
            )
            kept = max(0, MAX_ERRORS_KEPT - invalid_before)
            if kept and invalid:
                db.executemany(
                    "INSERT OR IGNORE INTO job_errors (job_id, line, error) VALUES (?, ?, ?)",
                    [(job_id, line, message) for line, message in sorted(invalid)[:kept]],
                )
            outcome = ChunkOutcome(len(created), len(replays))
            total_tasks = created_before + reused_before + outcome.created + outcome.reused
            if stop_line is not None:
                reason = (
                    f"quota exhausted at line {stop_line}: {created_before + outcome.created} tasks"
                    " were created and are kept; raise the label quota and submit the remaining lines"
                    f" as a new job ({stop_hint})"
                )
                self._progress(db, job_id, stop_line - 1, None, outcome, len(invalid), now)
                self._end_job(db, job_id, JobStatus.FAILED, reason, now)
                return ChunkOutcome(outcome.created, outcome.reused, reason)
            self._progress(db, job_id, chunk.lines_after, chunk.offset_after, outcome, len(invalid), now)
            if chunk.last:
                if total_tasks:
                    db.execute(
                        "UPDATE jobs SET status = 'labeling', sealed_credentials = NULL, updated_at = ?"
                        " WHERE job_id = ?",
                        (now, job_id),
                    )
                else:
                    reason = (
                        "the manifest is empty"
                        if chunk.lines_after == 0
                        else "the manifest has no valid lines (see errors)"
                    )
                    self._end_job(db, job_id, JobStatus.FAILED, reason, now)
                    return ChunkOutcome(0, 0, reason)
            return outcome

    @staticmethod
    def _progress(
        db: sqlite3.Connection,
        job_id: str,
        lines: int,
        offset: int | None,
        outcome: ChunkOutcome,
        invalid: int,
        now: float,
    ) -> None:
        db.execute(
            "UPDATE jobs SET lines = ?, byte_offset = coalesce(?, byte_offset),"
            " tasks_created = tasks_created + ?, tasks_reused = tasks_reused + ?,"
            " invalid_lines = invalid_lines + ?, updated_at = ? WHERE job_id = ?",
            (lines, offset, outcome.created, outcome.reused, invalid, now, job_id),
        )

    def _end_job(
        self, db: sqlite3.Connection, job_id: str, status: JobStatus, reason: str | None, now: float
    ) -> bool:
        """Completed or failed, credentials erased, and the event in the same transaction."""
        changed = db.execute(
            "UPDATE jobs SET status = ?, failure_reason = ?, sealed_credentials = NULL, updated_at = ?,"
            " completed_at = ? WHERE job_id = ? AND status NOT IN ('completed', 'failed')",
            (status.value, reason, now, now, job_id),
        ).rowcount
        if changed:
            self._record_job_event(db, job_id, f"job.{status.value}", now)
        return bool(changed)

    @staticmethod
    def _record_job_event(db: sqlite3.Connection, job_id: str, event_type: str, now: float) -> None:
        """An outbox event for the job's customer, if it has an active webhook at all; a job
        that named a callback_url sends it to that hook alone (as its tasks do)."""
        db.execute(
            "INSERT INTO events (event_id, event_type, customer_id, subject_id, callback_url, created_at)"
            " SELECT ?, ?, j.customer_id, j.job_id, j.callback_url, ? FROM jobs j"
            " WHERE j.job_id = ? AND EXISTS (SELECT 1 FROM webhooks w WHERE w.customer_id = j.customer_id"
            " AND w.active = 1 AND w.deleted_at IS NULL)",
            (ids.new_id("evt", now), event_type, now, job_id),
        )

    def fail_job(self, job_id: str, reason: str, now: float) -> None:
        with self._conn.write() as db:
            self._end_job(db, job_id, JobStatus.FAILED, reason, now)
        self._conn.truncate_wal()

    def complete_job(self, job_id: str, now: float) -> bool:
        """False when the job was not labeling (already ended)."""
        with self._conn.write() as db:
            row = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row[0] != JobStatus.LABELING.value:
                return False
            return self._end_job(db, job_id, JobStatus.COMPLETED, None, now)

    def first_open_line(self, job_id: str, from_line: int) -> int | None:
        """The first line at or after `from_line` whose task is not final yet (not settled nor
        failed: a verified task still waits for its payout, whose txid the export shows).

        Tasks never become undecided again, so a caller may start the next look where this
        one stopped: following a job to its end reads each line once."""
        row = self._db.execute(
            "SELECT j.line FROM job_items j JOIN tasks t ON t.task_id = j.task_id"
            " WHERE j.job_id = ? AND j.line >= ? AND t.status IN ('pending', 'in_progress', 'verified')"
            " ORDER BY j.line LIMIT 1",
            (job_id, from_line),
        ).fetchone()
        return None if row is None else row[0]

    def export_rows(self, job_id: str, after_line: int, limit: int) -> list[ExportRow]:
        """The job's tasks in manifest order (unscoped: call after an owned get_job)."""
        rows = self._db.execute(
            "SELECT j.line, j.task_id, t.data_url, j.metadata, t.status, t.consensus_label,"
            " t.confidence, t.worker_count, t.agreement_count, t.bsv_txid"
            " FROM job_items j JOIN tasks t ON t.task_id = j.task_id"
            " WHERE j.job_id = ? AND j.line > ? ORDER BY j.line LIMIT ?",
            (job_id, after_line, limit),
        ).fetchall()
        return [ExportRow(*r) for r in rows]
