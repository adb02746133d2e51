"""Migrations are cut into statements by SQLite's own parser, so a ';' inside a string literal
or a trigger body stays where it is, and every migration of the tree applies to a new file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore, statements


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
