"""The one SQLite connection a store's areas share, and how a write transaction is made.

Calls are short and synchronous; the core makes them from its event loop, so within one process
they never interleave. Writes use `BEGIN IMMEDIATE` so several core processes can share a file:
the write lock is taken up front and a busy writer is waited for (busy_timeout), never
half-applied. An area that needs another's rows in its transaction (an event in the outbox for
a task it changes, the tasks a job chunk inserts) calls that area's module function with the
transaction's `sqlite3.Connection`, not a method of another class.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

from asg_grpc.domain.errors import Unavailable
from asg_grpc.secret_file import make_private_dir, make_private_file
from asg_grpc.store.sqlite.migrations import MIGRATIONS, statements


class ConnectionOptions(TypedDict, total=False):
    """Connection's keyword options, for whoever opens one on a caller's behalf (SQLiteStore)."""

    synchronous: str
    busy_timeout: float
    idempotency_ttl: float


class Connection:
    """The store's file, opened (created and migrated when new) with its pragmas."""

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
        self.idempotency_ttl = idempotency_ttl
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self.db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        # Freed space is zeroed, so an erased secret (job credentials) does not linger in a page.
        self.db.execute("PRAGMA secure_delete=ON")
        # Sorts, GROUP BYs and statement journals in memory, not in temporary files: a trigger
        # with several statements cost ~5x more with them on disk (docs/benchmarks.md).
        self.db.execute("PRAGMA temp_store=MEMORY")
        self._migrate()

    def _migrate(self) -> None:
        with self.write():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole on success, rolled back on any exception.

        A lock still held by another process after busy_timeout becomes Unavailable, and so
        does a disk that refuses the write (full: SQLITE_FULL; a write past a file-size limit:
        SQLITE_IOERR): the transaction is rolled back whole, and the same write succeeds once
        there is room, so the caller is told to retry rather than that something broke."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable("the store is busy; retry shortly") from exc
            if exc.sqlite_errorname.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
                raise Unavailable("the store cannot write to its disk; retry shortly") from exc
            raise

    def truncate_wal(self) -> None:
        """Copy the WAL into the database and empty it, so old page images (an erased secret's
        among them) leave the disk. Best effort: with another process reading, it waits for
        nobody and the WAL is emptied by a later checkpoint instead."""
        self.db.execute("PRAGMA busy_timeout=0")
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self.db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    def close(self) -> None:
        self.db.close()
