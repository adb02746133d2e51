"""The workers area of the SQLite store: labelers and the hash of each one's token."""

from __future__ import annotations

import orjson

from asg_grpc.domain.workers import Worker, WorkerRegistration
from asg_grpc.store.sqlite.area import Area


class SQLiteWorkers(Area):
    """Workers: registration, token lookup, the roster."""

    def create_worker(self, registration: WorkerRegistration, *, token_hash: str, now: float) -> Worker:
        worker = registration.worker(now)
        with self._conn.write() as db:
            db.execute(
                "INSERT INTO workers (worker_id, name, payout_address, task_types, token_hash, created_at,"
                " challenge_gateway) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    worker.worker_id,
                    worker.name,
                    worker.payout_address,
                    orjson.dumps(worker.task_types).decode(),
                    token_hash,
                    now,
                    int(worker.challenge_gateway),
                ),
            )
        return worker

    def worker_for_token(self, token_hash: str) -> Worker | None:
        row = self._db.execute(
            "SELECT worker_id, name, payout_address, task_types, created_at, challenge_gateway FROM workers"
            " WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return Worker(row[0], row[1], row[2], tuple(orjson.loads(row[3])), row[4], bool(row[5]))

    def workers(self) -> list[Worker]:
        rows = self._db.execute(
            "SELECT worker_id, name, payout_address, task_types, created_at, challenge_gateway FROM workers"
            " WHERE revoked_at IS NULL"
        ).fetchall()
        return [Worker(r[0], r[1], r[2], tuple(orjson.loads(r[3])), r[4], bool(r[5])) for r in rows]
