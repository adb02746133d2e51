"""The tasks area of the SQLite store: tasks with their quota reservation and idempotency
keys, their labels, reads by customer and batch, cancelling and deadlines.

`insert_tasks` and `find_replays` take the caller's transaction: job ingestion (jobs.py) stores the
tasks of a manifest chunk with them, in the chunk's own transaction.
"""

from __future__ import annotations

import sqlite3

import orjson

from asg_grpc.domain import ids
from asg_grpc.domain.errors import (
    DomainError,
    IdempotencyConflict,
    NotFound,
    NotReady,
    QuotaExhausted,
    UnregisteredWebhook,
    ValidationError,
)
from asg_grpc.domain.tasks import BatchProgress, LabelRecord, Settlement, Task, TaskSpec, TaskStatus, Verdict
from asg_grpc.store.sqlite import dashboard as sqlite_dashboard
from asg_grpc.store.sqlite.area import Area, chunks
from asg_grpc.store.sqlite.webhooks import is_registered_webhook, record_task_events
from asg_grpc.store.task_records import Submission, Submitted, TaskPage

_TASK_COLUMNS = (
    "seq, task_id, customer_id, status, task_type, data_url, question, options,"
    " consensus_threshold, callback_url, idempotency_key, batch_id, created_at, updated_at,"
    " consensus_label, confidence, worker_count, agreement_count, failure_reason, decided_at,"
    " bsv_txid, total_cost_sats, settled_at, expires_at,"
    " consensus_method, target_confidence, max_labels, gold_label, labor"
)


def _task(row: tuple) -> Task:
    return Task(
        task_id=row[1],
        customer_id=row[2],
        status=TaskStatus(row[3]),
        spec=TaskSpec(
            task_type=row[4],
            data_url=row[5],
            question=row[6],
            options=tuple(orjson.loads(row[7])),
            consensus_threshold=row[8],
            callback_url=row[9],
            idempotency_key=row[10],
            expires_in_seconds=None if row[23] is None else round(row[23] - row[12]),
            consensus_method=row[24],
            target_confidence=row[25],
            max_labels=row[26],
            gold_label=row[27],
            labor=row[28],
        ),
        batch_id=row[11],
        created_at=row[12],
        updated_at=row[13],
        verdict=None if row[19] is None else Verdict(*row[14:20]),
        settlement=None if row[22] is None else Settlement(row[20], row[21], row[22]),
        expires_at=row[23],
    )


class SQLiteTasks(Area):
    """Tasks and labels: submission with its quota and idempotency, reads, cancelling, deadlines."""

    def submit(self, submissions: list[Submission], now: float) -> list[list[Submitted] | DomainError]:
        with self._conn.write() as db:
            outcomes: list[list[Submitted] | DomainError] = []
            new = NewTasks()  # every accepted submission's rows, written in one go at the end
            for submission in submissions:
                # Each submission stands alone. A refused one has written nothing (its checks
                # come before its writes), so the others still commit with no savepoint.
                try:
                    outcomes.append(self._submit(db, submission, now, new))
                except DomainError as exc:
                    outcomes.append(exc)
            new.write(db)
        return outcomes

    def _submit(
        self, db: sqlite3.Connection, submission: Submission, now: float, new: NewTasks
    ) -> list[Submitted]:
        """Every check that can refuse the submission runs before its first write."""
        customer_id, specs, batch_id = submission.customer_id, submission.specs, submission.batch_id
        for url in {s.callback_url for s in specs if s.callback_url is not None}:
            if not is_registered_webhook(db, customer_id, url):
                raise UnregisteredWebhook()
        if any(s.idempotency_key is not None for s in specs):
            new.write(db)  # an earlier submission of this commit may hold the key: look it up too
        replays, conflicts = find_replays(db, customer_id, specs, now, self._conn.idempotency_ttl)
        if conflicts:
            in_batch = batch_id is not None
            raise IdempotencyConflict(
                f"tasks[{conflicts[0]}].idempotency_key" if in_batch else "idempotency_key"
            )
        fresh = [(i, specs[i]) for i in range(len(specs)) if i not in replays]
        needed = sum(spec.consensus_threshold for _, spec in fresh)
        tier = None
        if needed:
            reserved = db.execute(
                "UPDATE customers SET labels_reserved = labels_reserved + ?"
                " WHERE customer_id = ? AND labels_reserved + ? <= label_quota RETURNING tier",
                (needed, customer_id, needed),
            ).fetchone()
            if reserved is None:
                raise self._quota_exhausted(db, customer_id, needed)
            # The tier at submission prices the task (docs/billing.md), whatever comes later.
            tier = reserved[0]
        created = new.add(customer_id, fresh, batch_id, tier, now)
        return [
            Submitted(replays[i], replayed=True) if i in replays else Submitted(created[i], replayed=False)
            for i in range(len(specs))
        ]

    @staticmethod
    def _quota_exhausted(db: sqlite3.Connection, customer_id: str, needed: int) -> QuotaExhausted:
        """The refusal with its numbers, read in the transaction that refused."""
        row = db.execute(
            "SELECT label_quota, labels_reserved FROM customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        limit, used = row if row is not None else (0, 0)
        return QuotaExhausted(limit, used, needed, customer_id)

    def get_task(self, customer_id: str, task_id: str) -> Task | None:
        row = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ? AND customer_id = ?",
            (task_id, customer_id),
        ).fetchone()
        return _task(row) if row else None

    def list_tasks(
        self,
        customer_id: str,
        *,
        status: TaskStatus | None,
        batch_id: str | None,
        limit: int,
        after_task_id: str | None,
    ) -> TaskPage:
        where = ["customer_id = ?"]
        args: list[object] = [customer_id]
        if after_task_id is not None:
            row = self._db.execute(
                "SELECT seq FROM tasks WHERE task_id = ? AND customer_id = ?", (after_task_id, customer_id)
            ).fetchone()
            if row is None:
                raise ValidationError("cursor", "is not a cursor this API returned")
            where.append("seq < ?")
            args.append(row[0])
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        rows = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        tasks = [_task(r) for r in rows[:limit]]
        return TaskPage(tasks, tasks[-1].task_id if len(rows) > limit else None)

    def batch_progress(self, customer_id: str, batch_id: str) -> BatchProgress | None:
        rows = self._db.execute(
            "SELECT status, count(*), min(created_at) FROM tasks"
            " WHERE batch_id = ? AND customer_id = ? GROUP BY status",
            (batch_id, customer_id),
        ).fetchall()
        if not rows:
            return None
        return BatchProgress.of(batch_id, {r[0]: r[1] for r in rows}, min(r[2] for r in rows))

    def task_labels(self, task_id: str) -> list[LabelRecord]:
        rows = self._db.execute(
            "SELECT worker_id, option, created_at FROM labels WHERE task_id = ? ORDER BY created_at",
            (task_id,),
        ).fetchall()
        return [LabelRecord(*row) for row in rows]

    def cancel_task(self, customer_id: str, task_id: str, now: float) -> Task:
        with self._conn.write() as db:
            row = db.execute(
                "SELECT status FROM tasks WHERE task_id = ? AND customer_id = ?", (task_id, customer_id)
            ).fetchone()
            if row is None:
                raise NotFound("task not found")
            status = TaskStatus(row[0])
            if status.decided and status is not TaskStatus.CANCELLED:  # cancelling twice is a no-op
                raise NotReady(
                    f"task is already {status.value}; only a task not decided yet can be cancelled"
                )
            if not status.decided:
                self._end_tasks(db, [task_id], TaskStatus.CANCELLED, now)
        task = self.get_task(customer_id, task_id)
        assert task is not None
        return task

    def expire_due(self, now: float, limit: int = 500) -> list[str]:
        with self._conn.write() as db:
            task_ids = [
                r[0]
                for r in db.execute(
                    "SELECT task_id FROM tasks INDEXED BY tasks_expiring"
                    " WHERE expires_at <= ? AND expires_at IS NOT NULL AND decided_at IS NULL"
                    " ORDER BY expires_at LIMIT ?",
                    (now, limit),
                )
            ]
            self._end_tasks(db, task_ids, TaskStatus.EXPIRED, now)
        return task_ids

    def _end_tasks(self, db: sqlite3.Connection, task_ids: list[str], status: TaskStatus, now: float) -> None:
        """Undecided tasks stop where they are (docs/api.md, cancelling and deadlines): the labels
        collected are their worker count, to be billed and paid; the rest of the quota they
        reserved is given back; an event each."""
        if not task_ids:
            return
        with sqlite_dashboard.counted(db, task_ids):
            db.executemany(
                "UPDATE tasks SET status = ?, failure_reason = ?, confidence = 0.0, agreement_count = 0,"
                " worker_count = (SELECT count(*) FROM labels l WHERE l.task_id = tasks.task_id),"
                " decided_at = ?, updated_at = ? WHERE task_id = ? AND decided_at IS NULL",
                [(status.value, status.value, now, now, task_id) for task_id in task_ids],
            )
        db.executemany(
            "UPDATE customers SET labels_reserved = labels_reserved"
            " - (SELECT max(0, t.consensus_threshold - t.worker_count) FROM tasks t WHERE t.task_id = ?)"
            " WHERE customer_id = (SELECT customer_id FROM tasks WHERE task_id = ?)",
            [(task_id, task_id) for task_id in task_ids],
        )
        record_task_events(db, task_ids, f"task.{status.value}", now)


_INSERT_TASK = (
    "INSERT INTO tasks (task_id, customer_id, status, task_type, data_url, question,"
    " options, consensus_threshold, callback_url, idempotency_key, fingerprint,"
    " batch_id, created_at, updated_at, label_target, tier, expires_at,"
    " consensus_method, target_confidence, max_labels, gold_label, labor)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


class NewTasks:
    """New task rows of one transaction and their counters, written together: a group commit
    of many single submissions pays one INSERT and one counter upsert each for all of them,
    not one per submission (docs/benchmarks.md, "The submit regression")."""

    def __init__(self) -> None:
        self._rows: list[tuple[object, ...]] = []
        self._tally = sqlite_dashboard.Tally()

    def add(
        self,
        customer_id: str,
        specs: list[tuple[int, TaskSpec]],
        batch_id: str | None,
        tier: str | None,
        now: float,
    ) -> dict[int, Task]:
        """New pending tasks (quota already reserved, on `tier`), keyed like `specs`; stored
        at the next `write`."""
        task_ids = ids.new_ids("tsk", len(specs), now)
        rows = self._rows
        created: dict[int, Task] = {}
        pending = TaskStatus.PENDING
        options_json: dict[tuple[str, ...], str] = {}  # a batch usually shares one label spec
        for (index, spec), task_id in zip(specs, task_ids, strict=True):
            options = options_json.get(spec.options)
            if options is None:
                options = options_json[spec.options] = orjson.dumps(spec.options).decode()
            expires_at = None if spec.expires_in_seconds is None else now + spec.expires_in_seconds
            rows.append(
                (
                    task_id,
                    customer_id,
                    pending.value,
                    spec.task_type,
                    spec.data_url,
                    spec.question,
                    options,
                    spec.consensus_threshold,
                    spec.callback_url,
                    spec.idempotency_key,
                    None if spec.idempotency_key is None else spec.fingerprint(),
                    batch_id,
                    now,
                    now,
                    spec.consensus_threshold,
                    tier,
                    expires_at,
                    spec.consensus_method,
                    spec.target_confidence,
                    spec.max_labels,
                    spec.gold_label,
                    spec.labor,
                )
            )
            created[index] = Task(
                task_id, customer_id, pending, spec, batch_id, now, now, expires_at=expires_at
            )
        self._tally.submitted_tasks(customer_id, now, [spec.task_type for _, spec in specs])
        return created

    def write(self, db: sqlite3.Connection) -> None:
        """The rows added since the last write, and their counters, in the caller's transaction."""
        if self._rows:
            db.executemany(_INSERT_TASK, self._rows)
            self._rows = []
        self._tally.write(db)


def insert_tasks(
    db: sqlite3.Connection,
    customer_id: str,
    specs: list[tuple[int, TaskSpec]],
    batch_id: str | None,
    tier: str | None,
    now: float,
) -> dict[int, Task]:
    """New pending tasks (quota already reserved, on `tier`), keyed like `specs`, written now."""
    new = NewTasks()
    created = new.add(customer_id, specs, batch_id, tier, now)
    new.write(db)
    return created


def find_replays(
    db: sqlite3.Connection, customer_id: str, specs: list[TaskSpec], now: float, ttl: float
) -> tuple[dict[int, Task], list[int]]:
    """Earlier tasks named by the specs' idempotency keys, by spec index; and the indexes
    (ascending) whose key names a task with another body (a conflict). A key names the
    newest task made with it less than `ttl` seconds ago; older ones are free."""
    keyed = {s.idempotency_key: i for i, s in enumerate(specs) if s.idempotency_key is not None}
    if not keyed:
        return {}, []
    found: dict[int, Task] = {}
    conflicts: list[int] = []
    seen: set[int] = set()
    for chunk in chunks(list(keyed)):
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT {_TASK_COLUMNS}, fingerprint FROM tasks"
            f" WHERE customer_id = ? AND idempotency_key IN ({marks}) AND created_at > ?"
            " ORDER BY created_at DESC",
            (customer_id, *chunk, now - ttl),
        ):
            index = keyed[row[10]]
            if index in seen:  # an older task of the key (a TTL made longer since)
                continue
            seen.add(index)
            if row[-1] != specs[index].fingerprint():
                conflicts.append(index)
            else:
                found[index] = _task(row)
    return found, sorted(conflicts)
