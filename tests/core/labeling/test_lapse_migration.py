"""Upgrading a store written while lapsed leases were stored as skips."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore


def test_lapses_stored_by_an_older_version_no_longer_exclude_their_worker(tmp_path: Path) -> None:
    path = tmp_path / "asg.sqlite3"
    version = next(i for i, script in enumerate(MIGRATIONS) if "'lease_expired'" in script)
    with sqlite3.connect(path) as db:  # the schema as the version before that migration left it
        for script in MIGRATIONS[:version]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version={version}")
        db.execute(
            "INSERT INTO skips (task_id, worker_id, reason, created_at) VALUES"
            " ('tsk_1', 'wrk_lapsed', 'lease_expired', 1.0), ('tsk_1', 'wrk_declined', 'unsure', 1.0)"
        )
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT worker_id FROM skips").fetchall() == [("wrk_declined",)]
