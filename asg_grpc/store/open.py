"""`open_store(url)`: the one place a storage backend is chosen (docs/storage.md, Choosing a store).

- `sqlite:///relative/path` or `sqlite:////absolute/path` (SQLAlchemy's spelling): the
  embedded default, one core process per file.
- `aerospike://host:port[,host:port…]/namespace[?set_prefix=name_]`: a namespace several core
  processes share (docs/storage-aerospike.md).

`parse_store_url` only parses, so `Settings.from_env` can refuse a bad `ASG_STORE` at start
(exit 2, naming it) before anything is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from asg_grpc.store.aerospike.connection import AerospikeUrl, parse_url
from asg_grpc.store.aerospike.tasks import IDEMPOTENCY_TTL
from asg_grpc.store.base import Store, store_methods

SCHEMES = ("sqlite", "aerospike")


@dataclass(frozen=True, slots=True)
class SqliteUrl:
    path: Path


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """What a backend needs besides its URL, from Settings (defaults as Settings' own)."""

    idempotency_ttl: int = IDEMPOTENCY_TTL
    sqlite_synchronous: str = "NORMAL"
    sqlite_busy_timeout: float = 5.0
    # Aerospike only: the local ledger's SQLite file, shared by the cores of one host
    # (asg_grpc/store/aerospike/ledger.py); Settings puts it at <data dir>/ledger.sqlite3.
    ledger_path: Path = Path("var/ledger.sqlite3")


def parse_store_url(url: str) -> SqliteUrl | AerospikeUrl:
    """ValueError saying what is wrong with `url` (the caller names the setting)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"must start with sqlite:// or aerospike://, got {url!r}")
    if scheme == "aerospike":
        return parse_url(url)
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"must be sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ValueError(f"a sqlite:// URL takes no query or fragment, got {url!r}")
    return SqliteUrl(Path(path))


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file (absolute paths get the fourth slash)."""
    return f"sqlite:///{path}"


def open_store(url: str | SqliteUrl | AerospikeUrl, options: StoreOptions | None = None) -> Store:
    """The store `url` names, opened (SQLite: created and migrated when new)."""
    options = options or StoreOptions()
    parsed = parse_store_url(url) if isinstance(url, str) else url
    if isinstance(parsed, SqliteUrl):
        from asg_grpc.store.sqlite import SQLiteStore

        return SQLiteStore(
            parsed.path,
            synchronous=options.sqlite_synchronous,
            busy_timeout=options.sqlite_busy_timeout,
            idempotency_ttl=options.idempotency_ttl,
        )
    from asg_grpc.store.aerospike import AerospikeStore

    # Not every area is on Aerospike yet: `missing_areas` says which, and the core refuses to
    # start on a store that lacks what it would call (asg_grpc/server.py).
    return cast(
        Store,
        AerospikeStore(
            parsed,
            idempotency_ttl=options.idempotency_ttl,
            ledger_path=options.ledger_path,
            busy_timeout=options.sqlite_busy_timeout,
        ),
    )


def missing_areas(store: object) -> list[str]:
    """The Store protocol's methods `store` does not have (empty for a complete backend)."""
    return sorted(name for name in store_methods() if not callable(getattr(store, name, None)))
