"""Migrations are cut into statements by SQLite's own parser, so a ';' inside a string literal
or a trigger body stays where it is, and every migration of the tree applies to a new file."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from asg_grpc.domain.tasks import TaskSpec, TaskStatus
from asg_grpc.store.ledger_records import NewLedgerTx
from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore, statements
from asg_grpc.store.task_records import Submission

SPEC = TaskSpec(
    "image_classification", "https://cdn.example.com/1.jpg", "Animal?", ("cat", "dog"), 3, None, None
)


def test_a_semicolon_inside_a_literal_or_a_trigger_is_not_a_statement_end() -> None:
    script = """
    CREATE TABLE notes (body TEXT DEFAULT 'a; b');
    CREATE TRIGGER notes_stamp AFTER INSERT ON notes BEGIN
        UPDATE notes SET body = body || ';' WHERE rowid = new.rowid;
    END;
    INSERT INTO notes DEFAULT VALUES;
    """
    cut = list(statements(script))
    db = sqlite3.connect(":memory:")
    for statement in cut:
        db.execute(statement)

    assert len(cut) == 3
    assert db.execute("SELECT body FROM notes").fetchall() == [("a; b;",)]


def test_a_migration_that_ends_inside_a_statement_is_refused() -> None:
    with pytest.raises(ValueError, match="ends inside a statement"):
        list(statements("CREATE TABLE t (x TEXT);\nCREATE TABLE u (y"))


def test_a_new_file_gets_every_migration(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "asg.sqlite3")
    store.close()
    version = sqlite3.connect(tmp_path / "asg.sqlite3").execute("PRAGMA user_version").fetchone()[0]

    assert version == len(MIGRATIONS)


FIXTURE = Path(__file__).parent / "fixtures" / "store-before-split.sqlite3"
FIXTURE_NOW = 1_780_000_000.0  # the fixture's clock (fixtures/make_store_before_split.py)


def schema(path: Path) -> set[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return set(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    finally:
        db.close()


def test_a_store_made_before_the_split_by_area_opens_with_its_rows(tmp_path: Path) -> None:
    """The file was written by the code of one module per backend (commit 9743282): the split
    kept one ordered migration list, so it opens as it was, every area's rows readable."""
    path = tmp_path / "asg.sqlite3"
    shutil.copyfile(FIXTURE, path)
    fresh = tmp_path / "fresh.sqlite3"
    SQLiteStore(fresh).close()

    store = SQLiteStore(path)
    try:
        version = store._db.execute("PRAGMA user_version").fetchone()[0]
        assert version == len(MIGRATIONS)
        owner = store.key_owner("a" * 64)
        assert owner is not None and owner.tier == "sandbox"
        customer_id = owner.customer_id
        customer = store.get_customer(customer_id)
        assert customer is not None and customer.email == "ada@example.com"
        page = store.list_tasks(customer_id, status=None, batch_id="bat_1", limit=10, after_task_id=None)
        assert sorted(t.status.value for t in page.tasks) == ["pending", "verified"]
        [verified] = [t for t in page.tasks if t.status is TaskStatus.VERIFIED]
        assert verified.verdict is not None and verified.verdict.label == "cat"
        assert [label.option for label in store.task_labels(verified.task_id)] == ["cat"] * 3
        progress = store.batch_progress(customer_id, "bat_1")
        assert progress is not None and progress.total == 2
        assert store.worker_for_token(f"{1:064x}") is not None
        assert [w.webhook_id for w in store.list_webhooks(customer_id)] == ["whk_1"]
        assert [e.subject_id for e in store.pending_events(10)] == [verified.task_id]
        job = store.get_job(customer_id, "job_1")
        assert job is not None and job.status.value == "pending"
        second_genesis = NewLedgerTx("cd" * 32, b"x", 0, "genesis", [], [])
        assert store.ledger_record_genesis(second_genesis, 0.0) == "ab" * 32  # the one it has
        assert store.wallet_balance().get("available") == 5_000_000
        assert store.consensus_state() == b'{"engine": 1}'
        assert store.dashboard_counters(customer_id, "0000-00-00").by_status == {"pending": 1, "verified": 1}
        # The idempotency key stored then still names its task.
        keyed = Submission(customer_id, [replace(SPEC, idempotency_key="key-1")], None)
        [outcome] = store.submit([keyed], FIXTURE_NOW + 1)
        assert isinstance(outcome, list)
        [replayed] = outcome
        assert replayed.replayed and replayed.task.task_id == verified.task_id
    finally:
        store.close()
    assert schema(path) == schema(fresh)
