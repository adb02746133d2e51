"""The contract suite runs each test on every backend: SQLite always, Aerospike when a node is
there (tests/store/conftest.py). `open_store()` is a new store object on the test's data, so a
second call is a second core process, or the same one restarted."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from asg_grpc.store.aerospike import AerospikeStore
from asg_grpc.store.sqlite import SQLiteStore

OpenStore = Callable[[], Any]


@pytest.fixture(params=["sqlite", "aerospike"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    closers: list[Callable[[], None]] = []
    if request.param == "sqlite":

        def opener() -> Any:
            store = SQLiteStore(tmp_path / "asg.sqlite3")
            closers.append(store.close)
            return store

    else:
        url = request.getfixturevalue("aerospike_url")
        url = replace(url, set_prefix=f"{url.set_prefix}{uuid.uuid4().hex[:6]}_")

        def opener() -> Any:
            store = AerospikeStore(url)
            closers.append(store.close)
            return store

    yield opener
    for close in closers:
        close()
