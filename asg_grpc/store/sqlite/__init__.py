"""The embedded backend: one SQLite file in WAL mode, one module per store area over one
shared connection (docs/storage.md, Areas)."""

from asg_grpc.store.sqlite.migrations import MIGRATIONS, statements
from asg_grpc.store.sqlite.store import SQLiteStore

__all__ = ["MIGRATIONS", "SQLiteStore", "statements"]
