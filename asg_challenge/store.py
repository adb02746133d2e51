"""The gateway's own SQLite file under --data-dir (dir 0700, files 0600): runtime config,
datasets and items, votes and labels, challenges, API keys, proxy rules, counters.

One connection behind a lock; every call is a short statement, so callers on the event loop
use it directly. Deleting a dataset removes its items, their votes and labels, and spends the
open challenges that show any of them, in one transaction."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, modality TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    question TEXT NOT NULL, text TEXT, media BLOB, media_type TEXT, options TEXT NOT NULL,
    gold_label TEXT, external_id TEXT,
    label TEXT, agreement REAL, votes INTEGER NOT NULL DEFAULT 0, labeled_at TEXT,
    disputed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS items_by_dataset ON items (dataset_id);
CREATE TABLE IF NOT EXISTS votes (
    item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE, label TEXT NOT NULL,
    sid TEXT NOT NULL, net TEXT NOT NULL, key_id TEXT NOT NULL, ts REAL NOT NULL,
    counted INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_session ON votes (item_id, sid) WHERE counted = 1;
CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_network ON votes (item_id, net) WHERE counted = 1;
CREATE TABLE IF NOT EXISTS challenges (
    id TEXT PRIMARY KEY, sid TEXT NOT NULL, key_id TEXT NOT NULL, slots TEXT NOT NULL,
    issued_at REAL NOT NULL, spent INTEGER NOT NULL DEFAULT 0, passed INTEGER NOT NULL DEFAULT 0,
    redir TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenge_items (
    challenge_id TEXT NOT NULL REFERENCES challenges(id) ON DELETE CASCADE, item_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS challenge_items_by_item ON challenge_items (item_id);
CREATE TABLE IF NOT EXISTS apikeys (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, key_prefix TEXT NOT NULL,
    datasets TEXT NOT NULL, sample_rate REAL NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS rules (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, pattern TEXT NOT NULL, match_type TEXT NOT NULL,
    priority INTEGER NOT NULL, enabled INTEGER NOT NULL, action TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS market_tasks (
    task_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, task_type TEXT NOT NULL, received_at REAL NOT NULL,
    state TEXT NOT NULL, reason TEXT, done_at TEXT);
"""


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def private_dir(path: Path) -> Path:
    """`path` created if missing and made 0700: it holds the secret key and the votes."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """`path` created 0600 if missing (before sqlite opens it, so it never exists wider)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)
    return path


COUNTER_ADD = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)


class Store:
    def __init__(self, data_dir: Path) -> None:
        private_dir(data_dir)
        self.path = private_file(data_dir / "challenge.sqlite3")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for suffix in ("-wal", "-shm"):
            side = data_dir / f"challenge.sqlite3{suffix}"
            if side.exists():
                side.chmod(0o600)
        # Counters bumped on a hot path (bump_soon), not written yet.
        self._pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        self.flush_counters()
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    # --- config and counters -----------------------------------------------------------

    def load_config(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self._all("SELECT key, value FROM config")}

    def save_config(self, values: dict[str, Any]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO config (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def bump(self, name: str, by: int = 1) -> None:
        with self._tx() as db:
            db.execute(COUNTER_ADD, (name, by))

    def bump_soon(self, name: str, within: float = 1.0) -> None:
        """One more on a counter bumped on a hot path (each JSON 403 of a bot's flood is a
        challenge issued): kept in memory and written at most every `within` seconds, and at
        close, so a flood costs no write per request. A crash loses at most that last second."""
        with self._pending_lock:
            self._pending[name] = self._pending.get(name, 0) + 1
            if time.monotonic() - self._flushed_at < within:
                return
        self.flush_counters()

    def flush_counters(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
        if pending:
            with self._tx() as db:
                db.executemany(COUNTER_ADD, list(pending.items()))

    def counter(self, name: str) -> int:
        """The stored count plus what bump_soon holds in memory."""
        row = self._one("SELECT value FROM counters WHERE name = ?", (name,))
        with self._pending_lock:
            pending = self._pending.get(name, 0)
        return (int(row["value"]) if row else 0) + pending

    # --- datasets and items ------------------------------------------------------------

    def create_dataset(self, name: str, modality: str) -> dict[str, Any]:
        ds = {"id": str(uuid.uuid4()), "name": name, "modality": modality, "created_at": utc_now()}
        with self._tx() as db:
            db.execute("INSERT INTO datasets VALUES (:id, :name, :modality, :created_at)", ds)
        return {**ds, "item_count": 0}

    _DATASET = (
        "SELECT d.id, d.name, d.modality, d.created_at, "
        "(SELECT COUNT(*) FROM items i WHERE i.dataset_id = d.id) AS item_count FROM datasets d"
    )

    def datasets(self) -> list[dict[str, Any]]:
        return [_dataset(r) for r in self._all(self._DATASET + " ORDER BY d.created_at, d.rowid")]

    def dataset(self, dataset_id: str) -> dict[str, Any] | None:
        row = self._one(self._DATASET + " WHERE d.id = ?", (dataset_id,))
        return _dataset(row) if row else None

    def existing_datasets(self, ids: Sequence[str]) -> set[str]:
        marks = ",".join("?" * len(ids))
        return {r["id"] for r in self._all(f"SELECT id FROM datasets WHERE id IN ({marks})", list(ids))}

    def delete_dataset(self, dataset_id: str) -> bool:
        """True when it existed. Items, votes and labels go with it; open challenges showing
        any of its items are spent so they can no longer be answered."""
        with self._tx() as db:
            db.execute(
                "UPDATE challenges SET spent = 1 WHERE spent = 0 AND id IN ("
                "SELECT ci.challenge_id FROM challenge_items ci JOIN items i ON i.id = ci.item_id "
                "WHERE i.dataset_id = ?)",
                (dataset_id,),
            )
            return db.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,)).rowcount > 0

    def add_items(self, dataset_id: str, items: Sequence[dict[str, Any]]) -> int:
        rows = [
            (
                str(uuid.uuid4()), dataset_id, it["question"], it.get("text"), it.get("media"),
                it.get("media_type"), json.dumps(it["options"]), it.get("gold_label"), it.get("external_id"),
            )
            for it in items
        ]  # fmt: skip
        with self._tx() as db:
            if db.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
                return -1
            db.executemany(
                "INSERT INTO items (id, dataset_id, question, text, media, media_type, options, gold_label,"
                " external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def item_ids(self, dataset_id: str) -> list[str]:
        return [
            r["id"]
            for r in self._all("SELECT id FROM items WHERE dataset_id = ? ORDER BY rowid", (dataset_id,))
        ]

    def total_items(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM items")
        return int(row["n"]) if row else 0

    def pick_items(
        self, dataset_ids: Sequence[str] | None, *, control: bool, n: int, sid: str
    ) -> list[dict[str, Any]]:
        """Up to `n` random items of the datasets (None = all): controls (a gold or consensus
        label) or unknowns (no label yet, not disputed, not already answered by `sid`)."""
        where = (
            ["(i.gold_label IS NOT NULL OR i.label IS NOT NULL)"]
            if control
            else [
                "i.gold_label IS NULL AND i.label IS NULL AND i.disputed = 0",
                "NOT EXISTS (SELECT 1 FROM votes v WHERE v.item_id = i.id AND v.sid = ?)",
            ]
        )
        args: list[Any] = [] if control else [sid]
        if dataset_ids is not None:
            if not dataset_ids:
                return []
            where.append(f"i.dataset_id IN ({','.join('?' * len(dataset_ids))})")
            args.extend(dataset_ids)
        sql = (
            "SELECT i.id, i.dataset_id, i.question, i.text, i.media_type, i.options, i.gold_label, i.label "
            f"FROM items i WHERE {' AND '.join(where)} ORDER BY random() LIMIT ?"
        )
        return [
            {**dict(r), "options": json.loads(r["options"]), "gold": r["gold_label"] or r["label"]}
            for r in self._all(sql, [*args, n])
        ]

    def item_media(self, item_id: str) -> tuple[bytes, str] | None:
        row = self._one("SELECT media, media_type FROM items WHERE id = ?", (item_id,))
        if row is None or row["media"] is None:
            return None
        return bytes(row["media"]), str(row["media_type"])

    # --- challenges and votes ----------------------------------------------------------

    def create_challenge(self, sid: str, key_id: str, slots: list[dict[str, Any]], redir: str) -> str:
        cid = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        with self._tx() as db:
            db.execute(
                "INSERT INTO challenges (id, sid, key_id, slots, issued_at, redir) VALUES (?, ?, ?, ?, ?, ?)",
                (cid, sid, key_id, json.dumps(slots), time.time(), redir),
            )
            db.executemany(
                "INSERT INTO challenge_items VALUES (?, ?)",
                [(cid, s["item_id"]) for s in slots if s.get("item_id")],
            )
            db.execute(
                "INSERT INTO counters VALUES ('challenges_issued', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1"
            )
        return cid

    def challenge(self, cid: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM challenges WHERE id = ?", (cid,))
        return {**dict(row), "slots": json.loads(row["slots"])} if row else None

    def spend_challenge(self, cid: str, passed: bool) -> bool:
        """True for the one caller that spends it; a replay finds it spent."""
        with self._tx() as db:
            spent = db.execute(
                "UPDATE challenges SET spent = 1, passed = ? WHERE id = ? AND spent = 0", (int(passed), cid)
            ).rowcount
            if spent and passed:
                db.execute(
                    "INSERT INTO counters VALUES ('challenges_passed', 1) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + 1"
                )
        return spent > 0

    def record_votes(
        self,
        votes: Sequence[tuple[str, str]],
        *,
        sid: str,
        net: str,
        key_id: str,
        counted: bool,
        threshold: float,
    ) -> None:
        """Store answers (counted only from passed challenges, at most one per item per session
        and per network: a second is kept uncounted) and relabel the items they touch."""
        from asg_challenge.domain import consensus

        now = time.time()
        with self._tx() as db:
            for item_id, label in votes:
                ok = counted
                if ok:
                    dup = db.execute(
                        "SELECT 1 FROM votes WHERE item_id = ? AND counted = 1 AND (sid = ? OR net = ?)",
                        (item_id, sid, net),
                    ).fetchone()
                    ok = dup is None
                if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                    continue  # its dataset was deleted meanwhile
                db.execute(
                    "INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item_id, label, sid, net, key_id, now, int(ok)),
                )
                if not ok:
                    continue
                labels = [
                    r[0]
                    for r in db.execute(
                        "SELECT label FROM votes WHERE item_id = ? AND counted = 1", (item_id,)
                    )
                ]
                c = consensus(labels, threshold)
                db.execute(
                    "UPDATE items SET votes = ?, agreement = ?, label = ?, disputed = ?, "
                    "labeled_at = CASE WHEN ? IS NULL THEN NULL ELSE COALESCE(labeled_at, ?) END "
                    "WHERE id = ?",
                    (c.votes, c.agreement, c.label, int(c.disputed), c.label, utc_now(), item_id),
                )

    def labeled(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        """The dataset's labeled items, oldest first, fetched in pages so an export streams."""
        last = ""
        while True:
            rows = self._all(
                "SELECT id AS item_id, dataset_id, label, agreement, votes, labeled_at, external_id "
                "FROM items "
                "WHERE dataset_id = ? AND label IS NOT NULL AND id > ? ORDER BY id LIMIT 500",
                (dataset_id, last),
            )
            if not rows:
                return
            for r in rows:
                yield dict(r)
            last = rows[-1]["item_id"]

    # --- api keys ----------------------------------------------------------------------

    def create_key(
        self, label: str, key_hash: str, prefix: str, datasets: list[str], sample_rate: float
    ) -> dict[str, Any]:
        row = {
            "id": str(uuid.uuid4()), "label": label, "key_hash": key_hash, "key_prefix": prefix,
            "datasets": json.dumps(datasets), "sample_rate": sample_rate, "created_at": utc_now(),
        }  # fmt: skip
        with self._tx() as db:
            db.execute(
                "INSERT INTO apikeys (id, label, key_hash, key_prefix, datasets, sample_rate, created_at) "
                "VALUES (:id, :label, :key_hash, :key_prefix, :datasets, :sample_rate, :created_at)",
                row,
            )
        return _key(row | {"revoked_at": None})

    def api_keys(self) -> list[dict[str, Any]]:
        return [_key(dict(r)) for r in self._all("SELECT * FROM apikeys ORDER BY created_at, rowid")]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM apikeys WHERE id = ?", (key_id,)).fetchone() is None:
                return False
            db.execute(
                "UPDATE apikeys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (utc_now(), key_id)
            )
        return True

    # --- proxy rules -------------------------------------------------------------------

    def create_rule(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rules").fetchone()[0]
            row = {"id": str(uuid.uuid4()), "seq": seq, "created_at": utc_now(), **fields}
            db.execute(
                "INSERT INTO rules VALUES "
                "(:id, :seq, :pattern, :match_type, :priority, :enabled, :action, :created_at)",
                {**row, "enabled": int(row["enabled"])},
            )
        return row

    def rules(self) -> list[dict[str, Any]]:
        return [_rule(r) for r in self._all("SELECT * FROM rules ORDER BY seq")]

    def update_rule(self, rule_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM rules WHERE id = ?", (rule_id,)).fetchone() is None:
                return None
            for k, v in fields.items():
                db.execute(
                    f"UPDATE rules SET {k} = ? WHERE id = ?", (int(v) if k == "enabled" else v, rule_id)
                )
            row = db.execute("SELECT * FROM rules WHERE id = ?", (rule_id,)).fetchone()
        return _rule(row)

    def delete_rule(self, rule_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount > 0

    # --- marketplace tasks (asg_challenge/marketplace.py) -------------------------------

    def market_receive(
        self, task_id: str, task_type: str, dataset: tuple[str, str], item: dict[str, Any]
    ) -> str:
        """The item mirroring core task `task_id`, made (with its dataset `(name, modality)`,
        if missing) the first time the task is assigned; the same item on every later
        assignment, so votes gathered while the core was away still count."""
        with self._tx() as db:
            row = db.execute(
                "SELECT m.item_id FROM market_tasks m JOIN items i ON i.id = m.item_id WHERE m.task_id = ?",
                (task_id,),
            ).fetchone()
            if row is not None:
                return str(row["item_id"])
            name, modality = dataset
            found = db.execute(
                "SELECT id FROM datasets WHERE name = ? ORDER BY rowid LIMIT 1", (name,)
            ).fetchone()
            dataset_id = found["id"] if found else str(uuid.uuid4())
            if found is None:
                db.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, ?)", (dataset_id, name, modality, utc_now())
                )
            item_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO items (id, dataset_id, question, text, options, external_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, dataset_id, item["question"], item["text"], json.dumps(item["options"]), task_id),
            )
            db.execute(
                "INSERT INTO market_tasks (task_id, item_id, task_type, received_at, state) "
                "VALUES (?, ?, ?, ?, 'open') "
                "ON CONFLICT(task_id) DO UPDATE SET item_id = excluded.item_id, state = 'open', "
                "received_at = excluded.received_at, reason = NULL, done_at = NULL",
                (task_id, item_id, task_type, time.time()),
            )
        return item_id

    def market_task(self, task_id: str) -> dict[str, Any] | None:
        """The task's row with its item's consensus (label, agreement, votes, disputed); None
        when the gateway never took it or its item (its dataset) was deleted."""
        row = self._one(
            "SELECT m.task_id, m.item_id, m.state, m.reason, m.received_at, i.label, i.agreement, i.votes, "
            "i.disputed FROM market_tasks m JOIN items i ON i.id = m.item_id WHERE m.task_id = ?",
            (task_id,),
        )
        return dict(row) if row else None

    def market_close(self, task_id: str, state: str, reason: str = "") -> None:
        """`delivered` (the core acked the label) or `returned` (skipped back: disputed, expired).
        A returned task's item is set aside like a disputed one: no longer served."""
        with self._tx() as db:
            db.execute(
                "UPDATE market_tasks SET state = ?, reason = ?, done_at = ? WHERE task_id = ?",
                (state, reason or None, utc_now(), task_id),
            )
            if state == "returned":
                db.execute(
                    "UPDATE items SET disputed = 1 WHERE label IS NULL AND id = "
                    "(SELECT item_id FROM market_tasks WHERE task_id = ?)",
                    (task_id,),
                )

    def market_expire(self, received_before: float) -> int:
        """Set aside open tasks received before then and still unlabeled (returned, expired):
        also those the core no longer offers the gateway (cancelled, decided elsewhere)."""
        rows = self._all(
            "SELECT m.task_id FROM market_tasks m JOIN items i ON i.id = m.item_id "
            "WHERE m.state = 'open' AND i.label IS NULL AND m.received_at < ?",
            (received_before,),
        )
        for r in rows:
            self.market_close(r["task_id"], "returned", "expired")
        return len(rows)

    def market_counts(self) -> dict[str, int]:
        """Open tasks still being labeled, labels owed to the core, delivered and returned."""
        row = self._one(
            "SELECT "
            "COALESCE(SUM(m.state = 'open' AND i.label IS NULL), 0) AS labeling, "
            "COALESCE(SUM(m.state = 'open' AND i.label IS NOT NULL), 0) AS owed, "
            "COALESCE(SUM(m.state = 'delivered'), 0) AS delivered, "
            "COALESCE(SUM(m.state = 'returned'), 0) AS returned "
            "FROM market_tasks m JOIN items i ON i.id = m.item_id"
        )
        return {k: int(row[k]) for k in ("labeling", "owed", "delivered", "returned")} if row else {}


def _dataset(r: sqlite3.Row) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "name", "modality", "item_count", "created_at")}


def _key(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "datasets": json.loads(r["datasets"]) if isinstance(r["datasets"], str) else r["datasets"]}


def _rule(r: sqlite3.Row) -> dict[str, Any]:
    return {**dict(r), "enabled": bool(r["enabled"])}
