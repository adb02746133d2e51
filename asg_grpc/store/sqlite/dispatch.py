"""The dispatch area of the SQLite store: the open tasks dispatch loads, the dispatch lease,
the adaptive engine's saved state, and each group commit of labels, skips and task states."""

from __future__ import annotations

import orjson

from asg_grpc.domain import consensus
from asg_grpc.domain.labeling import OpenTask, labels_beyond_reserved
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.sqlite import dashboard as sqlite_dashboard
from asg_grpc.store.sqlite.area import Area, chunks
from asg_grpc.store.sqlite.webhooks import record_task_events
from asg_grpc.store.task_records import LabelingBatch


class SQLiteDispatch(Area):
    """Leases and dispatch: what the dispatching core loads, leases and writes."""

    def open_tasks(self, *, after_seq: int, limit: int) -> list[OpenTask]:
        rows = self._db.execute(
            "SELECT seq, task_id, task_type, data_url, question, options, consensus_threshold,"
            " label_target, status, consensus_method, target_confidence, max_labels, gold_label,"
            " customer_id, labor FROM tasks WHERE seq > ? AND status IN ('pending', 'in_progress')"
            " ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        tasks = {
            r[1]: OpenTask(
                seq=r[0],
                task_id=r[1],
                task_type=r[2],
                data_url=r[3],
                question=r[4],
                options=tuple(orjson.loads(r[5])),
                threshold=r[6],
                target=r[7],
                status=TaskStatus(r[8]),
                method=r[9],
                target_confidence=r[10],
                max_labels=r[11],
                gold=r[12],
                customer_id=r[13],
                labor=r[14],
            )
            for r in rows
        }
        started = [t.task_id for t in tasks.values() if t.status is TaskStatus.IN_PROGRESS]
        for chunk in chunks(started):
            marks = ",".join("?" * len(chunk))
            for task_id, worker_id, option in self._db.execute(
                f"SELECT task_id, worker_id, option FROM labels WHERE task_id IN ({marks})", chunk
            ):
                tasks[task_id].labels[worker_id] = option
            for task_id, worker_id in self._db.execute(
                f"SELECT task_id, worker_id FROM skips WHERE task_id IN ({marks})", chunk
            ):
                tasks[task_id].skipped.add(worker_id)
        return list(tasks.values())

    def consensus_state(self) -> bytes | None:
        row = self._db.execute("SELECT snapshot FROM consensus_state WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def save_consensus_state(self, snapshot: bytes, now: float) -> None:
        with self._conn.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO consensus_state (id, snapshot, saved_at) VALUES (1, ?, ?)",
                (snapshot, now),
            )

    def dispatch_lease(self) -> tuple[str, float] | None:
        row = self._db.execute("SELECT owner, heartbeat_at FROM dispatch_lease WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def take_dispatch_lease(self, owner: str, now: float, expected: tuple[str, float] | None) -> bool:
        with self._conn.write() as db:
            row = db.execute("SELECT owner, heartbeat_at FROM dispatch_lease WHERE id = 1").fetchone()
            if (tuple(row) if row else None) != expected:
                return False
            db.execute(
                "INSERT OR REPLACE INTO dispatch_lease (id, owner, heartbeat_at) VALUES (1, ?, ?)",
                (owner, now),
            )
        return True

    def renew_dispatch_lease(self, owner: str, now: float) -> bool:
        with self._conn.write() as db:
            renewed = db.execute(
                "UPDATE dispatch_lease SET heartbeat_at = ? WHERE id = 1 AND owner = ?", (now, owner)
            ).rowcount
        return bool(renewed)

    def release_dispatch_lease(self, owner: str) -> None:
        with self._conn.write() as db:
            db.execute("DELETE FROM dispatch_lease WHERE id = 1 AND owner = ?", (owner,))

    def record_labeling(self, batch: LabelingBatch) -> set[str]:
        with self._conn.write() as db:
            # Each task's state first: one that changes no row was closed by someone else
            # (cancelled, expired, or decided by another dispatcher during a lease takeover),
            # and the labels for it are not stored: nobody is billed or paid for them.
            closed: set[str] = set()
            decided: dict[str, list[str]] = {"task.verified": [], "task.failed": []}
            with sqlite_dashboard.counted_labeling(db, batch.tasks):
                for task in batch.tasks:
                    if db.execute(_TASK_STATE_UPDATE, _task_state_row(task, batch.now)).rowcount == 0:
                        closed.add(task.task_id)
                    elif task.status.decided:
                        event = "task.verified" if task.status is TaskStatus.VERIFIED else "task.failed"
                        decided[event].append(task.task_id)
            labels = [label for label in batch.labels if label[0] not in closed] if closed else batch.labels
            if labels:
                db.executemany(
                    # A worker's second label for a task (possible only while two dispatchers
                    # overlapped at a lease takeover) keeps the first, rather than failing the
                    # whole group forever.
                    "INSERT OR IGNORE INTO labels (task_id, worker_id, option, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    labels,
                )
            if batch.skips:
                db.executemany(
                    "INSERT OR IGNORE INTO skips (task_id, worker_id, reason, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    batch.skips,
                )
            for event, task_ids in decided.items():
                if task_ids:
                    record_task_events(db, task_ids, event, batch.now)
            extra = [
                (n, task.task_id)
                for task in batch.tasks
                if task.task_id not in closed and (n := labels_beyond_reserved(task))
            ]
            if extra:  # billed as labels, so counted in the quota too (docs/billing.md)
                db.executemany(
                    "UPDATE customers SET labels_reserved = labels_reserved + ?"
                    " WHERE customer_id = (SELECT customer_id FROM tasks WHERE task_id = ?)",
                    extra,
                )
        return closed


_TASK_STATE_UPDATE = (
    "UPDATE tasks SET status = ?, label_target = ?, consensus_label = ?, confidence = ?,"
    " worker_count = ?, agreement_count = ?, failure_reason = ?, decided_at = ?, updated_at = ?"
    " WHERE task_id = ? AND decided_at IS NULL"
)


def _task_state_row(task: OpenTask, now: float) -> tuple:
    outcome = task.outcome
    verdict: tuple[str | None, float | None, int | None, int | None, str | None, float | None]
    if isinstance(outcome, consensus.Decided):
        verdict = (
            outcome.label,
            outcome.confidence,
            outcome.worker_count,
            outcome.agreement_count,
            None,
            now,
        )
    elif isinstance(outcome, consensus.NoConsensus):
        verdict = (None, 0.0, outcome.worker_count, 0, outcome.reason, now)
    else:
        verdict = (None, None, None, None, None, None)
    return (task.status.value, task.target, *verdict, now, task.task_id)
