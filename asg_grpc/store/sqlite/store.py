"""The SQLite store: every area over one shared connection (docs/storage.md, Areas)."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from asg_grpc.store.sqlite.area import Area
from asg_grpc.store.sqlite.connection import Connection, ConnectionOptions
from asg_grpc.store.sqlite.customers import SQLiteCustomers
from asg_grpc.store.sqlite.dashboard import SQLiteDashboard
from asg_grpc.store.sqlite.dispatch import SQLiteDispatch
from asg_grpc.store.sqlite.jobs import SQLiteJobs
from asg_grpc.store.sqlite.ledger import SQLiteLedger
from asg_grpc.store.sqlite.settlement import SQLiteSettlement
from asg_grpc.store.sqlite.tasks import SQLiteTasks
from asg_grpc.store.sqlite.webhooks import SQLiteWebhooks
from asg_grpc.store.sqlite.workers import SQLiteWorkers


class SQLiteStore(
    SQLiteCustomers,
    SQLiteTasks,
    SQLiteWorkers,
    SQLiteDispatch,
    SQLiteSettlement,
    SQLiteWebhooks,
    SQLiteJobs,
    SQLiteLedger,
    SQLiteDashboard,
):
    """The file at `path`, created and migrated when new. The areas share one `Connection`, so
    each of them is one class over it, never a stub standing for another."""

    def __init__(self, path: Path, **options: Unpack[ConnectionOptions]) -> None:
        Area.__init__(self, Connection(path, **options))
        self.path = path

    def close(self) -> None:
        self._conn.close()
