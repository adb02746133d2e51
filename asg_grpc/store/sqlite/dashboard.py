"""The dashboard's reads in the SQLite store, and how its counters are kept.

Every figure of the
overview and quality panels is a row of `dashboard_counts`, kept up to date in the very
transaction that inserts or changes a task, so a read costs the same at ten tasks or ten
million. A counter row is (customer, metric, bucket) → n, total:

    status  / <status>      tasks in that status
    day     / YYYY-MM-DD    tasks submitted that UTC day
    decided / ''            tasks consensus decided (verified, settled, failed); total = Σ confidence
    bin     / 0..9          those by confidence: [0.0, 0.1) … [0.9, 1.0]
    perfect / ''            those where every label agreed
    label   / <label>       consensus labels of verified and settled tasks
    settled / ''            settled tasks; total = Σ (settled_at − created_at)
    usage   / YYYY-MM|kind|tier|task_type   billing's usage of that UTC month: n tasks, total =
                            Σ labels; kind as billing.USAGE_KINDS (`submitted` by created_at,
                            the others by decided_at), tier '' when none or not priced

Usage is counted, not priced: prices are settings (ASG_TIERS) that may change between two
reads, so `GET /v1/billing/usage` prices the counts as it reads them, as it did the scan's.

A change applies the old row's contributions negated and the new row's, netted per counter.
The first version did that in triggers; they cost the labeling path a third of its throughput
(a trigger program per row, with a statement journal per statement), so the store's write paths
now wrap their task changes in `counted(…)`, which nets a whole transaction's changes in Python
and writes each touched counter once (docs/benchmarks.md, dashboard counters).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from asg_grpc.domain import consensus
from asg_grpc.domain.billing import Month, UsageCounts, parse_month, usage_counts, usage_kind
from asg_grpc.domain.dashboard import Counters, TaskQuery, TaskRow, TaskRows
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.sqlite.area import Area, chunks

_DECIDED = "{r}.status IN ('verified', 'settled', 'failed')"


def _contributions(r: str, sign: str, *, day: bool, source: str = "") -> str:
    """SELECTs of (c, m, b, n, t): what row `r` adds to the counters, times `sign`."""
    decided = _DECIDED.format(r=r)
    parts = [f"SELECT {r}.customer_id AS c, 'status' AS m, {r}.status AS b, {sign} AS n, 0.0 AS t{source}"]
    if day:
        parts.append(f"SELECT {r}.customer_id, 'day', date({r}.created_at, 'unixepoch'), {sign}, 0.0{source}")
    parts += [
        f"SELECT {r}.customer_id, 'decided', '', {sign}, {sign} * {r}.confidence{source} WHERE {decided}",
        f"SELECT {r}.customer_id, 'bin', CAST(min(9, max(0, CAST({r}.confidence * 10 + 1e-9 AS INTEGER)))"
        f" AS TEXT), {sign}, 0.0{source} WHERE {decided}",
        f"SELECT {r}.customer_id, 'perfect', '', {sign}, 0.0{source} WHERE {decided}"
        f" AND {r}.worker_count > 0 AND {r}.agreement_count = {r}.worker_count",
        f"SELECT {r}.customer_id, 'label', {r}.consensus_label, {sign}, 0.0{source}"
        f" WHERE {r}.status IN ('verified', 'settled') AND {r}.consensus_label IS NOT NULL",
        f"SELECT {r}.customer_id, 'settled', '', {sign}, {sign} * ({r}.settled_at - {r}.created_at){source}"
        f" WHERE {r}.status = 'settled' AND {r}.settled_at IS NOT NULL",
    ]
    return " UNION ALL ".join(parts)


def _apply(*contributions: str) -> str:
    return (
        "INSERT INTO dashboard_counts (customer_id, metric, bucket, n, total)"
        f" SELECT c, m, b, sum(n), sum(t) FROM ({' UNION ALL '.join(contributions)})"
        " GROUP BY c, m, b HAVING sum(n) <> 0 OR sum(t) <> 0"
        " ON CONFLICT (customer_id, metric, bucket)"
        " DO UPDATE SET n = n + excluded.n, total = total + excluded.total;"
    )


_WATCHED = ("status", "confidence", "consensus_label", "worker_count", "agreement_count", "settled_at")

# Appended to sqlite.MIGRATIONS once; like every migration, never edited afterwards.
MIGRATION = f"""
CREATE TABLE dashboard_counts (
    customer_id TEXT NOT NULL,
    metric      TEXT NOT NULL,
    bucket      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    total       REAL NOT NULL,
    PRIMARY KEY (customer_id, metric, bucket)
) WITHOUT ROWID;
CREATE INDEX tasks_customer_status ON tasks(customer_id, status, seq);
CREATE TRIGGER dashboard_task_insert AFTER INSERT ON tasks BEGIN
    {_apply(_contributions("NEW", "1", day=True))}
END;
CREATE TRIGGER dashboard_task_update AFTER UPDATE OF {", ".join(_WATCHED)} ON tasks
    WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _WATCHED)} BEGIN
    {_apply(_contributions("OLD", "-1", day=False), _contributions("NEW", "1", day=False))}
END;
CREATE TRIGGER dashboard_task_delete AFTER DELETE ON tasks BEGIN
    {_apply(_contributions("OLD", "-1", day=True))}
END;
{_apply(_contributions("tasks", "1", day=True, source=" FROM tasks"))}
"""

# Appended after MIGRATION. Deleting a task has no write path of its own yet, so its trigger
# stays: nothing in the product fires it, and a future purge is counted without a second path.
PYTHON_COUNTERS = """
DROP TRIGGER dashboard_task_insert;
DROP TRIGGER dashboard_task_update;
"""


def _usage_contributions(r: str, sign: str, *, submitted: bool, source: str = "") -> str:
    """SELECTs of (c, m, b, n, t): what row `r` adds to the `usage` counters, times `sign`
    (its submission only when `submitted`: created_at and task_type never change)."""
    month = "strftime('%Y-%m', {at}, 'unixepoch')"
    parts = []
    if submitted:
        parts.append(
            f"SELECT {r}.customer_id AS c, 'usage' AS m,"
            f" {month.format(at=r + '.created_at')} || '|submitted||' || {r}.task_type AS b,"
            f" {sign} AS n, 0.0 AS t{source}"
        )
    kind = (
        f"CASE {r}.status WHEN 'failed' THEN 'failed|' WHEN 'cancelled' THEN 'ended|'"
        f" WHEN 'expired' THEN 'ended|' ELSE 'charged|' END"
    )
    tier = f"CASE {r}.status WHEN 'failed' THEN '' ELSE coalesce({r}.tier, '') END"
    labels = f"CASE {r}.status WHEN 'failed' THEN 0 ELSE coalesce({r}.worker_count, 0) END"
    parts.append(
        f"SELECT {r}.customer_id, 'usage',"
        f" {month.format(at=r + '.decided_at')} || '|' || {kind} || {tier} || '|' || {r}.task_type,"
        f" {sign}, {sign} * {labels}{source} WHERE {r}.decided_at IS NOT NULL"
    )
    return " UNION ALL ".join(parts)


# Appended after PYTHON_COUNTERS: billing's usage of a month in counters too (the usage
# endpoints read them instead of a month of task rows), backfilled from the rows there are.
# The index the old reads used goes (nothing else reads it: one less index per decision);
# the delete trigger now counts usage as well.
USAGE_COUNTERS = f"""
DROP INDEX tasks_customer_decided;
DROP TRIGGER dashboard_task_delete;
CREATE TRIGGER dashboard_task_delete AFTER DELETE ON tasks BEGIN
    {_apply(_contributions("OLD", "-1", day=True), _usage_contributions("OLD", "-1", submitted=True))}
END;
{_apply(_usage_contributions("tasks", "1", submitted=True, source=" FROM tasks"))}
"""

_DECIDED_STATUSES = frozenset({"verified", "settled", "failed"})
_LABELED_STATUSES = frozenset({"verified", "settled"})
# Grouped by (customer, status, confidence bin, perfect, label, has settled_at, task type, tier,
# month decided): the buckets a row counts in, computed as _bin and Tally.add do.
_GROUPED = (
    "SELECT customer_id, status,"
    " CAST(min(9, max(0, CAST(coalesce(confidence, 0.0) * 10 + 1e-9 AS INTEGER))) AS TEXT),"
    " coalesce(worker_count > 0 AND agreement_count = worker_count, 0), consensus_label,"
    " settled_at IS NOT NULL, task_type, tier, strftime('%Y-%m', decided_at, 'unixepoch'),"
    " count(*), total(coalesce(confidence, 0.0)), total(settled_at - created_at),"
    " total(coalesce(worker_count, 0))"
    " FROM tasks"
)
_UPSERT = (
    "INSERT INTO dashboard_counts (customer_id, metric, bucket, n, total) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (customer_id, metric, bucket)"
    " DO UPDATE SET n = n + excluded.n, total = total + excluded.total"
)
# Well under SQLite's limit of host parameters per statement (32766 since 3.32).
_CHUNK = 5000

# customer, status, created_at, confidence, label, worker count, agreement count, settled_at,
# task type, tier, decided_at
CountedRow = tuple[
    str,
    str,
    float,
    float | None,
    str | None,
    int | None,
    int | None,
    float | None,
    str,
    str | None,
    float | None,
]
# customer, status, confidence bin, perfect, label, has settled_at, task type, tier, month
# decided (YYYY-MM or None), n, Σ confidence, Σ (settled − created), Σ worker count
CountedGroup = tuple[
    str, str, str, bool, str | None, bool, str, str | None, str | None, int, float, float, float
]


def _bin(confidence: float) -> str:
    return str(min(9, max(0, int(confidence * 10 + 1e-9))))


def day_of(created_at: float) -> str:
    """The UTC day a task was submitted, as SQLite's date(…, 'unixepoch') writes it."""
    return datetime.fromtimestamp(created_at, UTC).date().isoformat()


class Tally:
    """Counter deltas, netted per counter, written with one upsert each."""

    def __init__(self) -> None:
        self._deltas: defaultdict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])

    def bump(self, customer_id: str, metric: str, bucket: str, n: int, total: float = 0.0) -> None:
        delta = self._deltas[(customer_id, metric, bucket)]
        delta[0] += n
        delta[1] += total

    def add(self, row: CountedRow, sign: int) -> None:
        """What one task row contributes (times `sign`), the submission day aside."""
        (
            customer,
            status,
            created_at,
            confidence,
            label,
            workers,
            agreed,
            settled_at,
            task_type,
            tier,
            decided_at,
        ) = row
        self.add_group(
            (
                customer,
                status,
                _bin(confidence or 0.0),
                bool(workers and agreed == workers),
                label,
                settled_at is not None,
                task_type,
                tier,
                None if decided_at is None else str(Month.of(decided_at)),
                1,
                confidence or 0.0,
                (settled_at or created_at) - created_at,
                workers or 0,
            ),
            sign,
        )

    def add_group(self, group: CountedGroup, sign: int) -> None:
        """What `n` task rows alike in every counted bucket contribute (times `sign`)."""
        customer, status, bin_, perfect, label, has_settled_at, task_type, tier, decided_month = group[:9]
        n, confidence_sum, settle_sum, workers_sum = group[9:]
        self.bump(customer, "status", status, sign * n)
        if status in _DECIDED_STATUSES:
            self.bump(customer, "decided", "", sign * n, sign * confidence_sum)
            self.bump(customer, "bin", bin_, sign * n)
            if perfect:
                self.bump(customer, "perfect", "", sign * n)
        if status in _LABELED_STATUSES and label is not None:
            self.bump(customer, "label", label, sign * n)
        if status == "settled" and has_settled_at:
            self.bump(customer, "settled", "", sign * n, sign * settle_sum)
        if decided_month is not None:
            kind = usage_kind(status)
            if kind == "failed":  # not priced: no tier, no labels (as _usage_contributions)
                tier, workers_sum = None, 0
            self.bump(
                customer,
                "usage",
                f"{decided_month}|{kind}|{tier or ''}|{task_type}",
                sign * n,
                sign * workers_sum,
            )

    def submitted(self, customer_id: str, created_at: float, task_type: str, n: int) -> None:
        """`n` new tasks of this type: in their status (pending), their day and their month."""
        self.bump(customer_id, "status", "pending", n)
        self.bump(customer_id, "day", day_of(created_at), n)
        self.bump(customer_id, "usage", f"{Month.of(created_at)}|submitted||{task_type}", n)

    def submitted_tasks(self, customer_id: str, created_at: float, task_types: Sequence[str]) -> None:
        """New tasks, one of each type given (repeats and all)."""
        if len(set(task_types)) == 1:  # the usual batch: one type
            self.submitted(customer_id, created_at, task_types[0], len(task_types))
        else:
            for task_type in task_types:
                self.submitted(customer_id, created_at, task_type, 1)

    def write(self, db: sqlite3.Connection) -> None:
        db.executemany(
            _UPSERT,
            [(*key, n, total) for key, (n, total) in self._deltas.items() if n or total],
        )
        self._deltas.clear()


def _counted_groups(db: sqlite3.Connection, task_ids: Sequence[str]) -> list[CountedGroup]:
    """These tasks grouped by every bucket they count in: SQLite sums them, Python sees a few groups."""
    groups: list[CountedGroup] = []
    for chunk in chunks(task_ids, _CHUNK):
        groups += db.execute(
            f"{_GROUPED} WHERE task_id IN ({', '.join('?' * len(chunk))}) GROUP BY 1, 2, 3, 4, 5, 6", chunk
        ).fetchall()
    return groups


@contextmanager
def counted(db: sqlite3.Connection, task_ids: Sequence[str]) -> Iterator[None]:
    """Keeps the counters true across the with-block's changes to these existing tasks.

    Reads their counted columns before and after, so whatever the statements inside do, the
    counters move by exactly the difference; call it inside the write transaction."""
    if not task_ids:
        yield
        return
    before = _counted_groups(db, task_ids)
    yield
    tally = Tally()
    for group in before:
        tally.add_group(group, -1)
    for group in _counted_groups(db, task_ids):
        tally.add_group(group, 1)
    tally.write(db)


@contextmanager
def counted_labeling(db: sqlite3.Connection, tasks: Sequence[OpenTask]) -> Iterator[None]:
    """`counted` for record_labeling's updates, cheaper (they are most of the counting): each
    changes a row only while it is undecided (`decided_at IS NULL`), and such a row counts in
    its status alone. So "before" is the undecided rows' status, and "after" is the task's new
    status, known here, for a task still undecided; only the tasks decided now are read again
    (docs/benchmarks.md, what the counters cost)."""
    task_ids = [task.task_id for task in tasks]
    if len(set(task_ids)) != len(task_ids):  # a task twice: only its first update applies
        with counted(db, task_ids):
            yield
        return
    before: dict[str, tuple[str, str]] = {}
    for chunk in chunks(task_ids, _CHUNK):
        for task_id, customer_id, status in db.execute(
            "SELECT task_id, customer_id, status FROM tasks"
            f" WHERE task_id IN ({', '.join('?' * len(chunk))}) AND decided_at IS NULL",
            chunk,
        ):
            before[task_id] = (customer_id, status)
    yield
    tally = Tally()
    reread = []
    for task in tasks:
        old = before.get(task.task_id)
        if old is None:  # decided already: the update left it alone
            continue
        customer_id, status = old
        tally.bump(customer_id, "status", status, -1)
        verdict = isinstance(task.outcome, consensus.Decided | consensus.NoConsensus)
        if not verdict and not task.status.decided:  # written with no verdict (_task_state_row)
            tally.bump(customer_id, "status", task.status.value, 1)
        else:
            reread.append(task.task_id)
    for group in _counted_groups(db, reread):
        tally.add_group(group, 1)
    tally.write(db)


def count_inserted(db: sqlite3.Connection, rows: Sequence[CountedRow]) -> None:
    """Task rows written in bulk (bench/dashboard.py's load), whatever their status."""
    tally = Tally()
    for row in rows:
        tally.add(row, 1)
        tally.bump(row[0], "day", day_of(row[2]), 1)
        tally.bump(row[0], "usage", f"{Month.of(row[2])}|submitted||{row[8]}", 1)
    tally.write(db)


_ROW_COLUMNS = "task_id, status, task_type, consensus_label, confidence, bsv_txid, created_at"


class SQLiteDashboard(Area):
    """The dashboard's counters and task list; billing's usage, read from the same counters."""

    def dashboard_counters(self, customer_id: str, since_day: str) -> Counters:
        counters = Counters()
        rows = self._db.execute(
            "SELECT metric, bucket, n, total FROM dashboard_counts"
            " WHERE customer_id = ? AND metric NOT IN ('day', 'usage')"
            " UNION ALL SELECT metric, bucket, n, total FROM dashboard_counts"
            " WHERE customer_id = ? AND metric = 'day' AND bucket >= ?",
            (customer_id, customer_id, since_day),
        )
        for metric, bucket, n, total in rows:
            if metric == "status":
                counters.by_status[bucket] = n
            elif metric == "day":
                counters.per_day[bucket] = n
            elif metric == "decided":
                counters.decided, counters.confidence_sum = n, total
            elif metric == "bin":
                counters.bins[int(bucket)] = n
            elif metric == "perfect":
                counters.perfect = n
            elif metric == "label":
                counters.labels[bucket] = n
            elif metric == "settled":
                counters.settled, counters.settlement_seconds_sum = n, total
        return counters

    def usage_counts(self, customer_id: str, start: float, end: float) -> list[UsageCounts]:
        """Whole months, from the `usage` counters: a month counts when its first second is in
        [start, end) (callers ask for one month, or several)."""
        rows = self._db.execute(
            "SELECT bucket, n, total FROM dashboard_counts"
            " WHERE customer_id = ? AND metric = 'usage' AND bucket >= ? AND bucket < ?",
            # '}' sorts after '|': every bucket of the month `end` falls in, filtered below.
            (customer_id, str(Month.of(start)), f"{Month.of(end)}}}"),
        )
        lines = []
        for bucket, n, total in rows:
            month, kind, tier, task_type = bucket.split("|", 3)
            if start <= parse_month(month, 0.0).start < end:
                lines.append((task_type, tier or None, kind, int(n), int(total)))
        return usage_counts(lines)

    def status_totals(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT bucket, sum(n) FROM dashboard_counts WHERE metric = 'status' GROUP BY bucket"
        )
        return {status: int(n) for status, n in rows}

    def dashboard_tasks(self, customer_id: str, query: TaskQuery) -> TaskRows:
        where, args = "customer_id = ?", [customer_id]
        if query.status is None:
            total = self._db.execute(
                "SELECT coalesce(sum(n), 0) FROM dashboard_counts"
                " WHERE customer_id = ? AND metric = 'status'",
                (customer_id,),
            ).fetchone()[0]
        else:
            where += " AND status = ?"
            args.append(query.status.value)
            row = self._db.execute(
                "SELECT n FROM dashboard_counts WHERE customer_id = ? AND metric = 'status' AND bucket = ?",
                (customer_id, query.status.value),
            ).fetchone()
            total = row[0] if row else 0
        if query.offset >= total:
            return TaskRows([], total)
        # OFFSET walks the index from whichever end of the list is nearer, so the deepest page
        # costs at most half the list's index entries, never a table row.
        limit, offset, newest_first = query.per_page, query.offset, query.newest_first
        if offset > total // 2:
            limit = min(query.per_page, total - offset)
            offset, newest_first = total - offset - limit, not newest_first
        index = "tasks_customer" if query.status is None else "tasks_customer_status"
        seqs = [
            r[0]
            for r in self._db.execute(
                f"SELECT seq FROM tasks INDEXED BY {index} WHERE {where}"
                f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?",
                (*args, limit, offset),
            )
        ]
        marks = ", ".join("?" * len(seqs))
        order = "DESC" if query.newest_first else "ASC"
        rows = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM tasks WHERE seq IN ({marks}) ORDER BY seq {order}", seqs
        ).fetchall()
        return TaskRows([TaskRow(r[0], TaskStatus(r[1]), *r[2:]) for r in rows], total)
