"""The contract suite runs each test on every backend: SQLite always, Aerospike when a node is
there (tests/store/conftest.py). `open_store()` is a new store object on the test's data, so a
second call is a second core process, or the same one restarted; it opens it as the core does
(`asg_grpc.store.open.open_store`), with `StoreOptions` when given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asg_grpc.store.aerospike.connection import AerospikeUrl
from asg_grpc.store.open import SqliteUrl, StoreOptions, sqlite_url
from asg_grpc.store.open import open_store as open_url

OpenStore = Callable[..., Any]


def openers(url: str | SqliteUrl | AerospikeUrl) -> tuple[OpenStore, Callable[[], None]]:
    """`open_store()` for one store URL, and what closes every store it opened."""
    closers: list[Callable[[], None]] = []

    def opener(options: StoreOptions | None = None) -> Any:
        store = open_url(url, options)
        closers.append(store.close)
        return store

    def close_all() -> None:
        for close in closers:
            close()

    return opener, close_all


@pytest.fixture(params=["sqlite", "aerospike"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    if request.param == "sqlite":
        url: str | SqliteUrl | AerospikeUrl = sqlite_url(tmp_path / "asg.sqlite3")
    else:
        url = request.getfixturevalue("fresh_aerospike_url")
    opener, close_all = openers(url)
    yield opener
    close_all()
