"""What every area of the SQLite store is built on: the store's one `Connection`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from asg_grpc.store.sqlite.connection import Connection

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, one `IN (...)` list each: a query's parameters stay
    under SQLite's limit however many ids a call is given."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Area:
    """One area of the SQLite store, over the connection it shares with the others: `_db` to
    read, `_conn.write()` for a transaction, `_conn.truncate_wal()` after erasing a secret."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.db
