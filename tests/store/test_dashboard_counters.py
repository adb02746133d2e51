"""The dashboard's counters equal what the task rows say, after inserts, every kind of status
change, and the migration's backfill of rows that existed before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from asg_grpc.domain.dashboard import Counters
from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore, statements

INSERT = (
    "INSERT INTO tasks (task_id, customer_id, status, task_type, data_url, question, options,"
    " consensus_threshold, created_at, updated_at, label_target)"
    " VALUES (?, ?, 'pending', 'image_classification', 'https://e.x/i.jpg', 'Q?', '[]', 3, ?, ?, 3)"
)
DECIDE = (
    "UPDATE tasks SET status = ?, consensus_label = ?, confidence = ?, worker_count = ?,"
    " agreement_count = ?, decided_at = 1000 WHERE task_id = ?"
)


def recount(db: sqlite3.Connection, customer_id: str) -> Counters:
    c = Counters()
    rows = db.execute(
        "SELECT status, created_at, consensus_label, confidence, worker_count, agreement_count, settled_at"
        " FROM tasks WHERE customer_id = ?",
        (customer_id,),
    ).fetchall()
    for status, created, label, conf, workers, agree, settled_at in rows:
        c.by_status[status] = c.by_status.get(status, 0) + 1
        day = db.execute("SELECT date(?, 'unixepoch')", (created,)).fetchone()[0]
        c.per_day[day] = c.per_day.get(day, 0) + 1
        if status in ("verified", "settled", "failed"):
            c.decided += 1
            c.confidence_sum += conf
            c.bins[min(9, int(conf * 10 + 1e-9))] += 1
            c.perfect += bool(workers and agree == workers)
        if status in ("verified", "settled") and label is not None:
            c.labels[label] = c.labels.get(label, 0) + 1
        if status == "settled":
            c.settled += 1
            c.settlement_seconds_sum += settled_at - created
    return c


def populate(db: sqlite3.Connection) -> None:
    for i in range(12):
        db.execute(INSERT, (f"t{i}", "cust_a" if i % 3 else "cust_b", 86400.0 * (i % 4), 0.0))
    db.execute("UPDATE tasks SET status = 'in_progress' WHERE task_id IN ('t1', 't2', 't3')")
    db.execute(DECIDE, ("verified", "a", 2 / 3, 3, 2, "t1"))
    db.execute(DECIDE, ("verified", "b", 1.0, 3, 3, "t2"))
    db.execute(DECIDE, ("failed", None, 0.0, 6, 0, "t4"))
    db.execute(DECIDE, ("verified", "a", 0.3, 10, 3, "t5"))
    db.execute(
        "UPDATE tasks SET status = 'settled', settled_at = created_at + 42 WHERE task_id IN ('t1', 't2')"
    )
    db.execute("UPDATE tasks SET status = 'cancelled' WHERE task_id = 't7'")
    db.execute("DELETE FROM tasks WHERE task_id = 't8'")


def test_triggers_keep_counters_equal_to_the_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    populate(store._db)
    for customer in ("cust_a", "cust_b", "cust_none"):
        got = store.dashboard_counters(customer, "0000-00-00")
        got.by_status = {k: v for k, v in got.by_status.items() if v}
        got.labels = {k: v for k, v in got.labels.items() if v}
        got.per_day = {k: v for k, v in got.per_day.items() if v}
        assert got == recount(store._db, customer)
    store.close()


def test_the_migration_backfills_existing_tasks(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:-1], start=1):
        for statement in statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version={number}")
    populate(db)
    expected = recount(db, "cust_a")
    db.close()
    store = SQLiteStore(path)
    got = store.dashboard_counters("cust_a", "0000-00-00")
    got.by_status = {k: v for k, v in got.by_status.items() if v}
    assert got == expected
    store.close()
