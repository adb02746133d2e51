"""The embedded backend: one SQLite file in WAL mode, one module per store area over one
shared connection (docs/storage.md)."""

from asg_grpc.store.sqlite.store import MIGRATIONS, SQLiteStore, statements

__all__ = ["MIGRATIONS", "SQLiteStore", "statements"]
