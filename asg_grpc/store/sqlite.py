"""The embedded backend: one SQLite file in WAL mode under the data dir.

Calls are short and synchronous; the core makes them from its event loop, so within one process
they never interleave. Writes use `BEGIN IMMEDIATE` so several core processes can share a file:
the write lock is taken up front and a busy writer is waited for (busy_timeout), never
half-applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from asg_grpc.domain import consensus, ids
from asg_grpc.domain.customers import MAX_ACTIVE_KEYS, ApiKey, Customer, Registration
from asg_grpc.domain.errors import (
    Conflict,
    DomainError,
    EmailTaken,
    IdempotencyConflict,
    NotFound,
    NotReady,
    QuotaExhausted,
    Unauthenticated,
    Unavailable,
    UnregisteredWebhook,
    ValidationError,
)
from asg_grpc.domain.labeling import OpenTask, labels_beyond_reserved
from asg_grpc.domain.tasks import BatchProgress, LabelRecord, Settlement, Task, TaskSpec, TaskStatus, Verdict
from asg_grpc.domain.workers import Worker, WorkerRegistration
from asg_grpc.secret_file import make_private_dir, make_private_file
from asg_grpc.store import sqlite_dashboard
from asg_grpc.store.base import KeyOwner, LabelingBatch, Submission, Submitted, TaskPage
from asg_grpc.store.sqlite_dashboard import DashboardTables
from asg_grpc.store.sqlite_jobs import JobTables
from asg_grpc.store.sqlite_ledger import LedgerTables
from asg_grpc.store.sqlite_settlement import SettlementTables
from asg_grpc.store.sqlite_webhooks import WebhookTables

# Each entry upgrades the schema by one version (PRAGMA user_version). Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE customers (
        customer_id     TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        email           TEXT NOT NULL UNIQUE,
        tier            TEXT NOT NULL,
        label_quota     INTEGER NOT NULL,
        labels_reserved INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL
    );
    CREATE TABLE api_keys (
        key_hash    TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        hint        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        revoked_at  REAL
    );
    CREATE INDEX api_keys_customer ON api_keys(customer_id);
    CREATE TABLE tasks (
        seq                 INTEGER PRIMARY KEY,
        task_id             TEXT NOT NULL UNIQUE,
        customer_id         TEXT NOT NULL,
        status              TEXT NOT NULL,
        task_type           TEXT NOT NULL,
        data_url            TEXT NOT NULL,
        question            TEXT NOT NULL,
        options             TEXT NOT NULL,
        consensus_threshold INTEGER NOT NULL,
        callback_url        TEXT,
        idempotency_key     TEXT,
        fingerprint         TEXT,  -- of the request body, kept for idempotency keys only
        batch_id            TEXT,
        created_at          REAL NOT NULL,
        updated_at          REAL NOT NULL,
        -- labels wanted: the threshold, raised one at a time while there is no majority
        label_target        INTEGER NOT NULL,
        consensus_label     TEXT,
        confidence          REAL,
        worker_count        INTEGER,
        agreement_count     INTEGER,
        failure_reason      TEXT,
        decided_at          REAL
    );
    CREATE UNIQUE INDEX tasks_idempotency ON tasks(customer_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_customer ON tasks(customer_id, seq);
    CREATE INDEX tasks_batch ON tasks(batch_id) WHERE batch_id IS NOT NULL;
    CREATE INDEX tasks_open ON tasks(seq) WHERE status IN ('pending', 'in_progress');
    CREATE TABLE workers (
        worker_id      TEXT PRIMARY KEY,
        name           TEXT NOT NULL,
        payout_address TEXT NOT NULL,
        task_types     TEXT NOT NULL,
        token_hash     TEXT NOT NULL UNIQUE,
        created_at     REAL NOT NULL,
        revoked_at     REAL
    );
    CREATE TABLE labels (
        task_id    TEXT NOT NULL,
        worker_id  TEXT NOT NULL,
        option     TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (task_id, worker_id)
    ) WITHOUT ROWID;
    CREATE TABLE dispatch_lease (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        owner        TEXT NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    CREATE TABLE skips (
        task_id    TEXT NOT NULL,
        worker_id  TEXT NOT NULL,
        reason     TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (task_id, worker_id)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE webhooks (
        webhook_id         TEXT PRIMARY KEY,
        customer_id        TEXT NOT NULL,
        callback_url       TEXT NOT NULL,
        secret             TEXT NOT NULL,
        events             TEXT NOT NULL,
        active             INTEGER NOT NULL DEFAULT 1,
        created_at         REAL NOT NULL,
        deactivated_at     REAL,
        deactivated_reason TEXT,
        deleted_at         REAL
    );
    CREATE UNIQUE INDEX webhooks_url ON webhooks(customer_id, callback_url) WHERE deleted_at IS NULL;
    CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,
        event_id     TEXT NOT NULL UNIQUE,
        event_type   TEXT NOT NULL,
        customer_id  TEXT NOT NULL,
        subject_id   TEXT NOT NULL,
        callback_url TEXT,
        created_at   REAL NOT NULL,
        fanned_out   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_pending ON events(seq) WHERE fanned_out = 0;
    CREATE TABLE deliveries (
        delivery_id     TEXT PRIMARY KEY,
        webhook_id      TEXT NOT NULL,
        event_id        TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        payload         BLOB NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_status     INTEGER,
        last_error      TEXT,
        next_attempt_at REAL,
        delivered_at    REAL,
        created_at      REAL NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 'pending';
    CREATE INDEX deliveries_webhook ON deliveries(webhook_id, created_at);
    """,
    """
    CREATE TABLE jobs (
        job_id              TEXT PRIMARY KEY,
        customer_id         TEXT NOT NULL,
        status              TEXT NOT NULL,
        manifest_url        TEXT NOT NULL,
        task_type           TEXT NOT NULL,
        question            TEXT NOT NULL,
        options             TEXT NOT NULL,
        consensus_threshold INTEGER NOT NULL,
        callback_url        TEXT,
        -- AES-GCM (sealing.py) while ingestion runs, NULL once it ends
        sealed_credentials  BLOB,
        lines               INTEGER NOT NULL DEFAULT 0,
        byte_offset         INTEGER NOT NULL DEFAULT 0,
        tasks_created       INTEGER NOT NULL DEFAULT 0,
        tasks_reused        INTEGER NOT NULL DEFAULT 0,
        invalid_lines       INTEGER NOT NULL DEFAULT 0,
        failure_reason      TEXT,
        created_at          REAL NOT NULL,
        updated_at          REAL NOT NULL,
        completed_at        REAL
    );
    CREATE INDEX jobs_open ON jobs(status) WHERE status IN ('pending', 'ingesting', 'labeling');
    CREATE TABLE job_items (
        job_id   TEXT NOT NULL,
        line     INTEGER NOT NULL,
        task_id  TEXT NOT NULL,
        metadata TEXT,
        PRIMARY KEY (job_id, line)
    ) WITHOUT ROWID;
    CREATE INDEX job_items_task ON job_items(task_id);
    CREATE TABLE job_errors (
        job_id TEXT NOT NULL,
        line   INTEGER NOT NULL,
        error  TEXT NOT NULL,
        PRIMARY KEY (job_id, line)
    ) WITHOUT ROWID;
    """,
    """
    CREATE INDEX jobs_customer ON jobs(customer_id, job_id);
    """,
    """
    CREATE TABLE ledger_transactions (
        seq          INTEGER PRIMARY KEY,
        txid         TEXT NOT NULL UNIQUE,
        raw          BLOB NOT NULL,
        fee          INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        accepted_at  REAL NOT NULL,
        block_height INTEGER,
        merkle_path  BLOB
    );
    CREATE INDEX ledger_transactions_unmined ON ledger_transactions(seq) WHERE block_height IS NULL;
    CREATE UNIQUE INDEX ledger_one_genesis ON ledger_transactions(kind) WHERE kind = 'genesis';
    CREATE TABLE ledger_outputs (
        txid           TEXT NOT NULL,
        vout           INTEGER NOT NULL,
        satoshis       INTEGER NOT NULL,
        locking_script BLOB NOT NULL,
        spent_by       TEXT,
        PRIMARY KEY (txid, vout)
    ) WITHOUT ROWID;
    CREATE INDEX ledger_outputs_unspent ON ledger_outputs(locking_script) WHERE spent_by IS NULL;
    CREATE TABLE ledger_blocks (
        height      INTEGER PRIMARY KEY,
        block_hash  TEXT NOT NULL UNIQUE,
        header      BLOB NOT NULL,
        merkle_root TEXT NOT NULL,
        time        INTEGER NOT NULL,
        tx_count    INTEGER NOT NULL
    );
    """,
    # billing: the tier a task was submitted on (NULL: before this column, or not through
    # submit) prices it; a month's usage is answered from these two indexes alone (covering).
    """
    ALTER TABLE tasks ADD COLUMN tier TEXT;
    CREATE INDEX tasks_customer_created ON tasks(customer_id, created_at, task_type);
    CREATE INDEX tasks_customer_decided
        ON tasks(customer_id, decided_at, task_type, status, tier, worker_count)
        WHERE decided_at IS NOT NULL;
    """,
    """
    ALTER TABLE tasks ADD COLUMN settlement_id TEXT;
    ALTER TABLE tasks ADD COLUMN bsv_txid TEXT;
    ALTER TABLE tasks ADD COLUMN total_cost_sats INTEGER;
    ALTER TABLE tasks ADD COLUMN settled_at REAL;
    CREATE INDEX tasks_settleable ON tasks(seq) WHERE status = 'verified' AND settlement_id IS NULL;
    CREATE INDEX tasks_settlement ON tasks(settlement_id) WHERE settlement_id IS NOT NULL;
    CREATE TABLE settlements (
        settlement_id TEXT PRIMARY KEY,
        txid          TEXT NOT NULL UNIQUE,
        raw           BLOB NOT NULL,
        -- prepared (recorded, maybe broadcast) -> accepted | rejected
        state         TEXT NOT NULL,
        task_count    INTEGER NOT NULL,
        output_count  INTEGER NOT NULL,
        fee           INTEGER NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT,
        created_at    REAL NOT NULL,
        decided_at    REAL
    );
    CREATE INDEX settlements_open ON settlements(created_at) WHERE state = 'prepared';
    CREATE TABLE payouts (
        task_id       TEXT NOT NULL,
        worker_id     TEXT NOT NULL,
        settlement_id TEXT NOT NULL,
        vout          INTEGER NOT NULL,
        sats          INTEGER NOT NULL,
        PRIMARY KEY (task_id, worker_id)
    ) WITHOUT ROWID;
    CREATE INDEX payouts_settlement ON payouts(settlement_id);
    CREATE TABLE wallet_utxos (
        txid          TEXT NOT NULL,
        vout          INTEGER NOT NULL,
        satoshis      INTEGER NOT NULL,
        -- available | reserved | spent | pending | lost (sqlite_settlement.py)
        state         TEXT NOT NULL,
        settlement_id TEXT,
        PRIMARY KEY (txid, vout)
    ) WITHOUT ROWID;
    CREATE INDEX wallet_utxos_available ON wallet_utxos(satoshis) WHERE state = 'available';
    CREATE INDEX wallet_utxos_settlement ON wallet_utxos(settlement_id) WHERE settlement_id IS NOT NULL;
    """,
    """
    CREATE INDEX tasks_batch_status ON tasks(batch_id, status) WHERE batch_id IS NOT NULL;
    DROP INDEX tasks_batch;
    """,
    # A lapsed lease was once stored as a skip, which kept its worker away for good and could
    # strand the task; lapses are no longer stored, and the old ones stop excluding anybody.
    """
    DELETE FROM skips WHERE reason = 'lease_expired';
    """,
    # Task deadlines (expires_in_seconds): the undecided ones with a deadline, soonest first.
    """
    ALTER TABLE tasks ADD COLUMN expires_at REAL;
    CREATE INDEX tasks_expiring ON tasks(expires_at) WHERE expires_at IS NOT NULL AND decided_at IS NULL;
    CREATE INDEX tasks_to_pay ON tasks(seq) WHERE settlement_id IS NULL AND (status = 'verified'
        OR (status IN ('cancelled', 'expired') AND worker_count > 0));
    DROP INDEX tasks_settleable;
    """,
    # Webhook signing secrets are sealed (asg_grpc/sealing.py). The clear column is emptied by
    # `seal_webhook_secrets` when the core starts, since sealing needs the key, which SQL has not.
    """
    ALTER TABLE webhooks RENAME COLUMN secret TO clear_secret;
    ALTER TABLE webhooks ADD COLUMN sealed_secret BLOB;
    """,
    # The dashboard's counters, kept by triggers on tasks, and the list's index by status.
    sqlite_dashboard.MIGRATION,
    sqlite_dashboard.PYTHON_COUNTERS,
    # Idempotency keys expire (ASG_IDEMPOTENCY_TTL): a key may name a new task once its old
    # one is past the TTL, so the index is no longer unique. Inside the TTL one key still
    # names one task: the lookup and the insert share one BEGIN IMMEDIATE transaction.
    """
    DROP INDEX tasks_idempotency;
    CREATE INDEX tasks_idempotency ON tasks(customer_id, idempotency_key, created_at)
        WHERE idempotency_key IS NOT NULL;
    """,
    # A batch's progress (GET /v1/tasks/batch/{id}) counted from the index alone: it covers
    # the owner and creation time too, and serves every read the narrower one did.
    """
    CREATE INDEX tasks_batch_progress ON tasks(batch_id, status, customer_id, created_at)
        WHERE batch_id IS NOT NULL;
    DROP INDEX tasks_batch_status;
    """,
    # Consensus methods (docs/quality.md): the adaptive engine's task fields, and its state
    # (`ConsensusEngine.snapshot()`, JSON) so a restart decides as the engine would have.
    """
    ALTER TABLE tasks ADD COLUMN consensus_method TEXT NOT NULL DEFAULT 'majority';
    ALTER TABLE tasks ADD COLUMN target_confidence REAL NOT NULL DEFAULT 0.95;
    ALTER TABLE tasks ADD COLUMN max_labels INTEGER NOT NULL DEFAULT 10;
    ALTER TABLE tasks ADD COLUMN gold_label TEXT;
    CREATE TABLE consensus_state (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        snapshot BLOB NOT NULL,
        saved_at REAL NOT NULL
    );
    """,
    # Billing's monthly usage in the dashboard's counters (sqlite_dashboard.py), backfilled.
    sqlite_dashboard.USAGE_COUNTERS,
    # A customer's default consensus method (PATCH /v1/customers/me); NULL: the deployment's.
    "ALTER TABLE customers ADD COLUMN consensus_method TEXT;",
)


def statements(script: str) -> Iterator[str]:
    """The statements of a migration, cut where SQLite's own parser says one ends.

    `executescript` would commit before running, so a migration could be half applied; cutting
    at every ';' would break on one inside a string literal or a trigger body."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"migration ends inside a statement: {pending.strip()[:60]!r}")


# A key authenticates until its revoked_at (set by a rotation's grace period or a revocation).
_ACTIVE_KEY = "(a.revoked_at IS NULL OR a.revoked_at > ?)"
_TASK_COLUMNS = (
    "seq, task_id, customer_id, status, task_type, data_url, question, options,"
    " consensus_threshold, callback_url, idempotency_key, batch_id, created_at, updated_at,"
    " consensus_label, confidence, worker_count, agreement_count, failure_reason, decided_at,"
    " bsv_txid, total_cost_sats, settled_at, expires_at,"
    " consensus_method, target_confidence, max_labels, gold_label"
)
_CUSTOMER_SELECT = (
    "SELECT c.customer_id, c.name, c.email, c.tier, c.label_quota, c.labels_reserved,"
    " (SELECT hint FROM api_keys k WHERE k.customer_id = c.customer_id AND k.revoked_at IS NULL"
    "  ORDER BY k.created_at DESC LIMIT 1), c.created_at, c.consensus_method FROM customers c"
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
        ),
        batch_id=row[11],
        created_at=row[12],
        updated_at=row[13],
        verdict=None if row[19] is None else Verdict(*row[14:20]),
        settlement=None if row[22] is None else Settlement(row[20], row[21], row[22]),
        expires_at=row[23],
    )


def _customer(row: tuple) -> Customer:
    customer_id, name, email, tier, label_quota, labels_reserved, hint, created_at, method = row
    return Customer(
        customer_id, name, email, tier, label_quota, labels_reserved, hint or "", created_at, method
    )


class SQLiteStore(WebhookTables, JobTables, LedgerTables, SettlementTables, DashboardTables):
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        idempotency_ttl: float = 86_400,
    ) -> None:
        make_private_dir(path.parent)
        # The file holds sealed secrets and customers' data: 0600, and SQLite gives the -wal and
        # -shm files it creates the database file's mode. Ones left by an older core are fixed.
        make_private_file(path)
        for companion in (path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            if companion.exists():
                companion.chmod(0o600)
        self.path = path
        # Seconds an idempotency key replays its task; after that the key makes a new one.
        self._idempotency_ttl = idempotency_ttl
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        # Freed space is zeroed, so an erased secret (job credentials) does not linger in a page.
        self._db.execute("PRAGMA secure_delete=ON")
        # Sorts, GROUP BYs and statement journals in memory, not in temporary files: a trigger
        # with several statements cost ~5x more with them on disk (docs/benchmarks.md).
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._migrate()

    def _migrate(self) -> None:
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(script):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole on success, rolled back on any exception.

        A lock still held by another process after busy_timeout becomes Unavailable, and so
        does a disk that refuses the write (full: SQLITE_FULL; a write past a file-size limit:
        SQLITE_IOERR): the transaction is rolled back whole, and the same write succeeds once
        there is room, so the caller is told to retry rather than that something broke."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable("the store is busy; retry shortly") from exc
            if exc.sqlite_errorname.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
                raise Unavailable("the store cannot write to its disk; retry shortly") from exc
            raise

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database and empty it, so old page images (an erased secret's
        among them) leave the disk. Best effort: with another process reading, it waits for
        nobody and the WAL is emptied by a later checkpoint instead."""
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self._db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    def close(self) -> None:
        self._db.close()

    # customers -------------------------------------------------------------------------

    def create_customer(
        self,
        registration: Registration,
        *,
        tier: str,
        label_quota: int,
        key_hash: str,
        key_hint: str,
        now: float,
    ) -> Customer:
        customer_id = ids.new_id("cust", now)
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO customers (customer_id, name, email, tier, label_quota, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (customer_id, registration.name, registration.email, tier, label_quota, now),
                )
                db.execute(
                    "INSERT INTO api_keys (key_hash, customer_id, hint, created_at) VALUES (?, ?, ?, ?)",
                    (key_hash, customer_id, key_hint, now),
                )
        except sqlite3.IntegrityError as exc:
            if "customers.email" in str(exc):
                raise EmailTaken() from exc
            raise
        return Customer(
            customer_id, registration.name, registration.email, tier, label_quota, 0, key_hint, now
        )

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._db.execute(_CUSTOMER_SELECT + " WHERE c.customer_id = ?", (customer_id,)).fetchone()
        return _customer(row) if row else None

    def revoke_key(self, key_hash: str, now: float) -> None:
        with self._write() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ?", (now, key_hash))

    def rotate_key(
        self, old_key_hash: str, new_key_hash: str, new_key_hint: str, now: float, retire_at: float
    ) -> tuple[ApiKey, ApiKey]:
        with self._write() as db:
            row = db.execute(
                "SELECT customer_id, hint, created_at, revoked_at FROM api_keys a"
                " WHERE a.key_hash = ? AND " + _ACTIVE_KEY,
                (old_key_hash, now),
            ).fetchone()
            if row is None:
                raise Unauthenticated("invalid api key")
            customer_id, old_hint, old_created, old_retire = row
            retire_at = retire_at if old_retire is None else min(old_retire, retire_at)
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ?", (retire_at, old_key_hash))
            (active,) = db.execute(
                "SELECT count(*) FROM api_keys a WHERE a.customer_id = ? AND " + _ACTIVE_KEY,
                (customer_id, now),
            ).fetchone()
            if active >= MAX_ACTIVE_KEYS:  # rolled back: the old key keeps its expiry
                raise Conflict(
                    f"at most {MAX_ACTIVE_KEYS} keys may be active at once;"
                    " rotate with grace_seconds 0 or wait for older keys to expire"
                )
            db.execute(
                "INSERT INTO api_keys (key_hash, customer_id, hint, created_at) VALUES (?, ?, ?, ?)",
                (new_key_hash, customer_id, new_key_hint, now),
            )
        return ApiKey(new_key_hint, now, None), ApiKey(old_hint, old_created, retire_at)

    def active_keys(self, customer_id: str, now: float) -> list[ApiKey]:
        rows = self._db.execute(
            "SELECT hint, created_at, revoked_at FROM api_keys a WHERE a.customer_id = ? AND "
            + _ACTIVE_KEY
            + " ORDER BY a.created_at DESC",
            (customer_id, now),
        ).fetchall()
        return [ApiKey(*row) for row in rows]

    # billing ---------------------------------------------------------------------------

    def key_owner(self, key_hash: str) -> KeyOwner | None:
        row = self._db.execute(
            "SELECT a.customer_id, c.tier, c.consensus_method FROM api_keys a"
            " JOIN customers c ON c.customer_id = a.customer_id"
            " WHERE a.key_hash = ? AND " + _ACTIVE_KEY,
            (key_hash, time.time()),
        ).fetchone()
        return KeyOwner(row[0], row[1], row[2]) if row else None

    def set_customer_tier(self, customer_id: str, tier: str, label_quota: int) -> Customer:
        with self._write() as db:
            changed = db.execute(
                "UPDATE customers SET tier = ?, label_quota = ? WHERE customer_id = ?",
                (tier, label_quota, customer_id),
            ).rowcount
        if not changed:
            raise NotFound("customer not found")
        customer = self.get_customer(customer_id)
        assert customer is not None
        return customer

    def set_customer_consensus(self, customer_id: str, method: str | None) -> Customer:
        with self._write() as db:
            changed = db.execute(
                "UPDATE customers SET consensus_method = ? WHERE customer_id = ?", (method, customer_id)
            ).rowcount
        if not changed:
            raise NotFound("customer not found")
        customer = self.get_customer(customer_id)
        assert customer is not None
        return customer

    def first_task_at(self, customer_id: str) -> float | None:
        row = self._db.execute(
            "SELECT MIN(created_at) FROM tasks WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return row[0]

    # tasks -----------------------------------------------------------------------------

    def submit(self, submissions: list[Submission], now: float) -> list[list[Submitted] | DomainError]:
        with self._write() as db:
            outcomes: list[list[Submitted] | DomainError] = []
            for submission in submissions:
                # Each submission stands alone. A refused one has written nothing (its checks
                # come before its writes), so the others still commit with no savepoint.
                try:
                    outcomes.append(self._submit(db, submission, now))
                except DomainError as exc:
                    outcomes.append(exc)
        return outcomes

    def _submit(self, db: sqlite3.Connection, submission: Submission, now: float) -> list[Submitted]:
        """Every check that can refuse the submission runs before its first write."""
        customer_id, specs, batch_id = submission.customer_id, submission.specs, submission.batch_id
        for url in {s.callback_url for s in specs if s.callback_url is not None}:
            if not self._is_registered_webhook(db, customer_id, url):
                raise UnregisteredWebhook()
        replays, conflicts = self._replays(db, customer_id, specs, now)
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
        created = self._insert_tasks(db, customer_id, fresh, batch_id, tier, now)
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

    def _insert_tasks(
        self,
        db: sqlite3.Connection,
        customer_id: str,
        specs: list[tuple[int, TaskSpec]],
        batch_id: str | None,
        tier: str | None,
        now: float,
    ) -> dict[int, Task]:
        """New pending tasks (quota already reserved, on `tier`), keyed like `specs`."""
        task_ids = ids.new_ids("tsk", len(specs), now)
        rows = []
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
                )
            )
            created[index] = Task(
                task_id, customer_id, pending, spec, batch_id, now, now, expires_at=expires_at
            )
        db.executemany(
            "INSERT INTO tasks (task_id, customer_id, status, task_type, data_url, question,"
            " options, consensus_threshold, callback_url, idempotency_key, fingerprint,"
            " batch_id, created_at, updated_at, label_target, tier, expires_at,"
            " consensus_method, target_confidence, max_labels, gold_label)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        sqlite_dashboard.count_submitted(db, customer_id, now, [spec.task_type for _, spec in specs])
        return created

    def _replays(
        self, db: sqlite3.Connection, customer_id: str, specs: list[TaskSpec], now: float
    ) -> tuple[dict[int, Task], list[int]]:
        """Earlier tasks named by the specs' idempotency keys, by spec index; and the indexes
        (ascending) whose key names a task with another body (a conflict). A key names the
        newest task made with it less than `idempotency_ttl` seconds ago; older ones are free."""
        keyed = {s.idempotency_key: i for i, s in enumerate(specs) if s.idempotency_key is not None}
        if not keyed:
            return {}, []
        found: dict[int, Task] = {}
        conflicts: list[int] = []
        seen: set[int] = set()
        keys = list(keyed)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in db.execute(
                f"SELECT {_TASK_COLUMNS}, fingerprint FROM tasks"
                f" WHERE customer_id = ? AND idempotency_key IN ({marks}) AND created_at > ?"
                " ORDER BY created_at DESC",
                (customer_id, *chunk, now - self._idempotency_ttl),
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

    # workers and labeling ----------------------------------------------------------------

    def create_worker(self, registration: WorkerRegistration, *, token_hash: str, now: float) -> Worker:
        worker = Worker(
            worker_id=ids.new_id("wkr", now),
            name=registration.name,
            payout_address=registration.payout_address,
            task_types=registration.task_types,
            created_at=now,
        )
        with self._write() as db:
            db.execute(
                "INSERT INTO workers (worker_id, name, payout_address, task_types, token_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    worker.worker_id,
                    worker.name,
                    worker.payout_address,
                    orjson.dumps(worker.task_types).decode(),
                    token_hash,
                    now,
                ),
            )
        return worker

    def worker_for_token(self, token_hash: str) -> Worker | None:
        row = self._db.execute(
            "SELECT worker_id, name, payout_address, task_types, created_at FROM workers"
            " WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return Worker(row[0], row[1], row[2], tuple(orjson.loads(row[3])), row[4])

    def workers(self) -> list[Worker]:
        rows = self._db.execute(
            "SELECT worker_id, name, payout_address, task_types, created_at FROM workers"
            " WHERE revoked_at IS NULL"
        ).fetchall()
        return [Worker(r[0], r[1], r[2], tuple(orjson.loads(r[3])), r[4]) for r in rows]

    def open_tasks(self, *, after_seq: int, limit: int) -> list[OpenTask]:
        rows = self._db.execute(
            "SELECT seq, task_id, task_type, data_url, question, options, consensus_threshold,"
            " label_target, status, consensus_method, target_confidence, max_labels, gold_label,"
            " customer_id FROM tasks WHERE seq > ? AND status IN ('pending', 'in_progress')"
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
            )
            for r in rows
        }
        started = [t.task_id for t in tasks.values() if t.status is TaskStatus.IN_PROGRESS]
        for start in range(0, len(started), 500):
            chunk = started[start : start + 500]
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
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO consensus_state (id, snapshot, saved_at) VALUES (1, ?, ?)",
                (snapshot, now),
            )

    def dispatch_lease(self) -> tuple[str, float] | None:
        row = self._db.execute("SELECT owner, heartbeat_at FROM dispatch_lease WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def take_dispatch_lease(self, owner: str, now: float, expected: tuple[str, float] | None) -> bool:
        with self._write() as db:
            row = db.execute("SELECT owner, heartbeat_at FROM dispatch_lease WHERE id = 1").fetchone()
            if (tuple(row) if row else None) != expected:
                return False
            db.execute(
                "INSERT OR REPLACE INTO dispatch_lease (id, owner, heartbeat_at) VALUES (1, ?, ?)",
                (owner, now),
            )
        return True

    def renew_dispatch_lease(self, owner: str, now: float) -> bool:
        with self._write() as db:
            renewed = db.execute(
                "UPDATE dispatch_lease SET heartbeat_at = ? WHERE id = 1 AND owner = ?", (now, owner)
            ).rowcount
        return bool(renewed)

    def release_dispatch_lease(self, owner: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM dispatch_lease WHERE id = 1 AND owner = ?", (owner,))

    def record_labeling(self, batch: LabelingBatch) -> set[str]:
        with self._write() as db:
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
                    self._record_task_events(db, task_ids, event, batch.now)
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

    def cancel_task(self, customer_id: str, task_id: str, now: float) -> Task:
        with self._write() as db:
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
        with self._write() as db:
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
        self._record_task_events(db, task_ids, f"task.{status.value}", now)


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
        verdict = (None, 0.0, outcome.worker_count, 0, "no_consensus", now)
    else:
        verdict = (None, None, None, None, None, None)
    return (task.status.value, task.target, *verdict, now, task.task_id)
