"""The SQLite schema: one ordered list of migrations, applied by `Connection` at open.

One list for every area, in the order they were added (PRAGMA user_version counts them), so a
database made by any earlier version opens and is brought up to date. Their text is never
edited, not even a comment inside the SQL: SQLite keeps that text as the schema, and
tests/store/test_migrations.py compares an old file's schema with a new one's (so the comment
naming `sqlite_settlement.py`, now `sqlite/settlement.py`, stays).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from asg_grpc.store.sqlite import dashboard as sqlite_dashboard

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
    # Billing's monthly usage in the dashboard's counters (sqlite/dashboard.py), backfilled.
    sqlite_dashboard.USAGE_COUNTERS,
    # A customer's default consensus method (PATCH /v1/customers/me); NULL: the deployment's.
    "ALTER TABLE customers ADD COLUMN consensus_method TEXT;",
    # Challenge-gateway labor (docs/challenge.md, "Opting in"): who may label a task, and
    # which workers are challenge gateways.
    """
    ALTER TABLE tasks ADD COLUMN labor TEXT NOT NULL DEFAULT 'any';
    ALTER TABLE workers ADD COLUMN challenge_gateway INTEGER NOT NULL DEFAULT 0;
    """,
    # A job's `labor`, given to every task it creates (docs/jobs.md).
    "ALTER TABLE jobs ADD COLUMN labor TEXT NOT NULL DEFAULT 'any';",
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
