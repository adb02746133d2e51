"""The dashboard's counters, billing's monthly usage among them, equal what the task rows say:
after inserts and every kind of status change made through `counted`, after the store's own
write paths (submit, labeling, decisions, cancel, expiry), and after the migrations' backfill of
rows that existed before them. Usage is checked against the scan it replaced (`scanned_usage`)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from asg_grpc.domain import consensus
from asg_grpc.domain.billing import Month, UsageCounts
from asg_grpc.domain.dashboard import Counters
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore, statements
from asg_grpc.store.sqlite import dashboard as sqlite_dashboard
from asg_grpc.store.sqlite.dashboard import Tally, counted
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.test_customers import register
from tests.store.contract.test_tasks import spec

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


def scanned_usage(db: sqlite3.Connection, customer_id: str, month: Month) -> list[UsageCounts]:
    """The month's usage as the store computed it before the counters: a scan of its tasks."""
    start, end = month.start, month.end
    counts: dict[tuple[str, str | None], dict[str, int]] = {}
    for task_type, submitted in db.execute(
        "SELECT task_type, COUNT(*) FROM tasks WHERE customer_id = ? AND created_at >= ? AND created_at < ?"
        " GROUP BY task_type",
        (customer_id, start, end),
    ):
        counts.setdefault((task_type, None), {})["tasks_submitted"] = submitted
    for task_type, tier, kind, tasks, labels in db.execute(
        "SELECT task_type, tier, CASE status WHEN 'failed' THEN 'failed'"
        " WHEN 'cancelled' THEN 'ended' WHEN 'expired' THEN 'ended' ELSE 'charged' END AS kind,"
        " COUNT(*), SUM(COALESCE(worker_count, 0)) FROM tasks"
        " WHERE customer_id = ? AND decided_at >= ? AND decided_at < ? GROUP BY task_type, tier, kind",
        (customer_id, start, end),
    ):
        line = counts.setdefault((task_type, None if kind == "failed" else tier), {})
        fields = {"failed": ("tasks_failed",), "ended": ("tasks_failed", "labels_ended")}.get(
            kind, ("tasks_charged", "labels_collected")
        )
        for name, value in zip(fields, (tasks, labels), strict=False):
            line[name] = line.get(name, 0) + value
    return sorted((UsageCounts(t, tier=tier, **f) for (t, tier), f in counts.items()), key=repr)


def assert_usage_counted(store: SQLiteStore, customers: tuple[str, ...], months: tuple[Month, ...]) -> None:
    for customer in customers:
        for month in months:
            got = sorted(store.usage_counts(customer, month.start, month.end), key=repr)
            assert got == scanned_usage(store._db, customer, month), (customer, month)


JANUARY_1970, FEBRUARY_1970 = Month(1970, 1), Month(1970, 2)


def populate(db: sqlite3.Connection, *, count: bool = True) -> None:
    """Twelve tasks through every kind of change; `count=False` leaves the counters alone, as
    rows written before the counters existed."""

    def change(task_ids: list[str], sql: str, args: tuple = ()) -> None:
        if count:
            with counted(db, task_ids):
                db.execute(sql, args)
        else:
            db.execute(sql, args)

    for i in range(12):
        customer, created = "cust_a" if i % 3 else "cust_b", 86400.0 * (i % 4)
        db.execute(INSERT, (f"t{i}", customer, created, 0.0))
        if count:
            tally = Tally()
            tally.submitted_tasks(customer, created, ["image_classification"])
            tally.write(db)
    change(["t1", "t2", "t3"], "UPDATE tasks SET status = 'in_progress' WHERE task_id IN ('t1', 't2', 't3')")
    change(["t1"], DECIDE, ("verified", "a", 2 / 3, 3, 2, "t1"))
    change(["t2"], DECIDE, ("verified", "b", 1.0, 3, 3, "t2"))
    change(["t4"], DECIDE, ("failed", None, 0.0, 6, 0, "t4"))
    change(["t5"], DECIDE, ("verified", "a", 0.3, 10, 3, "t5"))
    change(
        ["t1", "t2"],
        "UPDATE tasks SET status = 'settled', settled_at = created_at + 42 WHERE task_id IN ('t1', 't2')",
    )
    change(["t7"], "UPDATE tasks SET status = 'cancelled' WHERE task_id = 't7'")
    change(["t6"], DECIDE, ("expired", None, 0.0, 1, 0, "t6"))
    change(["t1", "t5"], "UPDATE tasks SET tier = 'pro' WHERE task_id IN ('t1', 't5')")
    change(["t5"], "UPDATE tasks SET decided_at = 86400 * 40 WHERE task_id = 't5'")  # February
    db.execute("DELETE FROM tasks WHERE task_id = 't8'")  # counted by its trigger


def nonzero(got: Counters) -> Counters:
    """Without empty buckets, and sums rounded: they are added up in another order than SQL's."""
    got.confidence_sum = round(got.confidence_sum, 9)
    got.settlement_seconds_sum = round(got.settlement_seconds_sum, 9)
    got.by_status = {k: v for k, v in got.by_status.items() if v}
    got.labels = {k: v for k, v in got.labels.items() if v}
    got.per_day = {k: v for k, v in got.per_day.items() if v}
    return got


def test_counted_changes_keep_counters_equal_to_the_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    populate(store._db)
    for customer in ("cust_a", "cust_b", "cust_none"):
        got = nonzero(store.dashboard_counters(customer, "0000-00-00"))
        assert got == nonzero(recount(store._db, customer))
    assert_usage_counted(store, ("cust_a", "cust_b", "cust_none"), (JANUARY_1970, FEBRUARY_1970))
    assert store.usage_counts("cust_a", FEBRUARY_1970.start, FEBRUARY_1970.end) == [
        UsageCounts("image_classification", tasks_charged=1, labels_collected=10, tier="pro")
    ]
    store.close()


def test_the_stores_write_paths_keep_the_counters(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    customer_id = register(store)
    now = time.time()
    [submitted] = store.submit([Submission(customer_id, [spec(n) for n in range(6)], "bat_1")], now)
    deadline = replace(spec(9), expires_in_seconds=1)
    [[expiring]] = store.submit([Submission(customer_id, [deadline], None)], now)
    assert not isinstance(submitted, Exception) and not isinstance(expiring, Exception)
    ids = [s.task.task_id for s in submitted]

    def open_task(index: int, status: TaskStatus, outcome: consensus.Outcome | None) -> OpenTask:
        task = OpenTask(index, ids[index], "image_classification", "u", "Q?", ("yes", "no"), 3, 3)
        task.status, task.outcome = status, outcome
        return task

    labels = [(ids[i], f"w{w}", "yes", now) for i in (1, 2, 3) for w in range(3)]
    store.record_labeling(LabelingBatch(now, labels[:3], [], [open_task(0, TaskStatus.IN_PROGRESS, None)]))
    store.record_labeling(
        LabelingBatch(
            now,
            labels,
            [],
            [
                open_task(1, TaskStatus.VERIFIED, consensus.Decided("yes", 3, 3)),
                open_task(2, TaskStatus.VERIFIED, consensus.Decided("no", 3, 2)),
                open_task(3, TaskStatus.FAILED, consensus.NoConsensus(6)),
                open_task(0, TaskStatus.PENDING, None),  # its lease lapsed
            ],
        )
    )
    store.cancel_task(customer_id, ids[4], now)
    assert store.expire_due(now + 5) == [expiring.task.task_id]
    # A task closed meanwhile (not changed, not counted) and a task twice in one batch.
    late = open_task(4, TaskStatus.VERIFIED, consensus.Decided("yes", 1, 1))
    twice = [open_task(5, TaskStatus.IN_PROGRESS, None), open_task(5, TaskStatus.PENDING, None)]
    assert store.record_labeling(LabelingBatch(now, [(ids[4], "w9", "yes", now)], [], [late, *twice])) == {
        ids[4]
    }
    got = nonzero(store.dashboard_counters(customer_id, "0000-00-00"))
    assert got == nonzero(recount(store._db, customer_id))
    assert got.by_status == {"pending": 2, "verified": 2, "failed": 1, "cancelled": 1, "expired": 1}
    assert_usage_counted(store, (customer_id,), (Month.of(now),))
    store.close()


def populated_before(path: Path, migration: str) -> sqlite3.Connection:
    """A store file at the version before `migration`, populated without counting."""
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[: MIGRATIONS.index(migration)], start=1):
        for statement in statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version={number}")
    populate(db, count=False)
    return db


def test_the_migration_backfills_existing_tasks(tmp_path: Path) -> None:
    db = populated_before(tmp_path / "old.sqlite3", sqlite_dashboard.MIGRATION)
    expected = nonzero(recount(db, "cust_a"))
    db.close()
    store = SQLiteStore(tmp_path / "old.sqlite3")
    assert nonzero(store.dashboard_counters("cust_a", "0000-00-00")) == expected
    assert_usage_counted(store, ("cust_a", "cust_b"), (JANUARY_1970, FEBRUARY_1970))
    store.close()


def test_the_usage_migration_backfills_the_months_of_existing_tasks(tmp_path: Path) -> None:
    """A store already keeping the dashboard's counters, but not usage yet."""
    populated_before(tmp_path / "old.sqlite3", sqlite_dashboard.USAGE_COUNTERS).close()
    store = SQLiteStore(tmp_path / "old.sqlite3")
    assert_usage_counted(store, ("cust_a", "cust_b"), (JANUARY_1970, FEBRUARY_1970))
    [january] = [c for c in store.usage_counts("cust_a", 0.0, JANUARY_1970.end) if c.tasks_submitted]
    assert january.tasks_submitted == 7  # cust_a's eight tasks, one deleted
    store.close()
