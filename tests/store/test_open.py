"""`open_store(url)`, the one place a backend is chosen: URLs parsed (or refused naming what is
wrong), each backend opened for real, and `ASG_STORE` read once by Settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from asg_grpc.settings import Settings, SettingsError
from asg_grpc.store.aerospike import AerospikeStore, AerospikeUrl
from asg_grpc.store.open import (
    SqliteUrl,
    StoreOptions,
    missing_areas,
    open_store,
    parse_store_url,
    sqlite_url,
)
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.task_records import Submission
from tests.conftest import until_serving
from tests.store.contract.test_customers import register
from tests.store.contract.test_tasks import spec


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("sqlite:///var/asg.sqlite3", SqliteUrl(Path("var/asg.sqlite3"))),
        ("sqlite:////srv/asg/asg.sqlite3", SqliteUrl(Path("/srv/asg/asg.sqlite3"))),
        ("aerospike://127.0.0.1:3000/asg", AerospikeUrl((("127.0.0.1", 3000),), "asg")),
        (
            "aerospike://a:3100,b/refinery?set_prefix=shop_",
            AerospikeUrl((("a", 3100), ("b", 3000)), "refinery", "shop_"),
        ),
        ("aerospike://h/asg?count_shards=64", AerospikeUrl((("h", 3000),), "asg", "", 64)),
    ],
)
def test_a_store_url_names_its_backend(url: str, parsed: object) -> None:
    assert parse_store_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("var/asg.sqlite3", "sqlite://"),
        ("postgres://db/asg", "sqlite://"),
        ("sqlite://var/asg.sqlite3", "sqlite:///relative/path"),
        ("sqlite:///", "sqlite:///relative/path"),
        ("sqlite:///a.db?mode=ro", "no query"),
        ("aerospike://h:3000/", "namespace"),
        ("aerospike://h:port/asg", "port"),
        ("aerospike://h/asg?prefix=x_", "set_prefix"),
        ("aerospike://h/asg?set_prefix=a-b", "set_prefix"),
        ("aerospike://h/asg?count_shards=0", "count_shards"),
        ("aerospike://h/asg?count_shards=x", "count_shards"),
    ],
)
def test_a_bad_store_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_store_url(url)
    with pytest.raises(SettingsError, match="ASG_STORE"):
        Settings.from_env({"ASG_STORE": url})


def test_settings_default_to_sqlite_under_the_data_dir_and_read_the_ttl(tmp_path: Path) -> None:
    settings = Settings.from_env({"ASG_DATA_DIR": str(tmp_path), "ASG_IDEMPOTENCY_TTL": "60"})
    assert settings.store_url == sqlite_url(tmp_path / "asg.sqlite3")
    assert parse_store_url(settings.store_url) == SqliteUrl(tmp_path / "asg.sqlite3")
    assert settings.store_options.idempotency_ttl == 60
    assert Settings.from_env({}).store_options.idempotency_ttl == 86_400
    chosen = Settings.from_env({"ASG_STORE": "aerospike://127.0.0.1:3000/asg"})
    assert chosen.store_url == "aerospike://127.0.0.1:3000/asg"


def _submits(store: Any) -> str:
    """A customer whose keyed task is made once and replayed; its id."""
    customer_id = register(store)
    [[made]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], time.time())
    [[again]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], time.time())
    assert again.replayed and again.task == made.task
    return customer_id


def test_a_sqlite_url_opens_a_migrated_file_that_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "asg.sqlite3"
    store = open_store(sqlite_url(path))
    try:
        assert isinstance(store, SQLiteStore) and path.exists()
        assert missing_areas(store) == []
        customer_id = _submits(store)
    finally:
        store.close()
    again = open_store(sqlite_url(path))
    try:
        page = again.list_tasks(customer_id, status=None, batch_id=None, limit=10, after_task_id=None)
        assert len(page.tasks) == 1
    finally:
        again.close()


def test_an_aerospike_url_opens_the_shared_backend(aerospike_url: AerospikeUrl) -> None:
    url = replace(aerospike_url, set_prefix=f"{aerospike_url.set_prefix}open_")
    hosts = ",".join(f"{h}:{p}" for h, p in url.hosts)
    store = open_store(f"aerospike://{hosts}/{url.namespace}?set_prefix={url.set_prefix}", StoreOptions(60))
    try:
        assert isinstance(store, AerospikeStore)
        _submits(store)
    finally:
        store.close()


def test_missing_areas_names_the_store_methods_a_backend_lacks() -> None:
    class Half:
        def submit(self) -> None: ...

    lacking = missing_areas(Half())
    assert "submit" not in lacking and {"get_task", "create_job", "usage_counts"} <= set(lacking)


BIN = Path(sys.executable).parent


def _core(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "asg-server")],
        env={**os.environ, "ASG_GRPC_ADDR": "127.0.0.1:0", **env},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_core_serves_from_the_sqlite_file_asg_store_names(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "refinery.sqlite3"
    core = _core({"ASG_DATA_DIR": str(tmp_path / "data"), "ASG_STORE": sqlite_url(path)})
    lines, rest = until_serving(core)
    serving = [json.loads(line) for line in lines if "core serving" in line]
    assert serving and serving[0]["store"] == sqlite_url(path), "".join(lines) + rest
    assert path.exists() and not (tmp_path / "data" / "asg.sqlite3").exists()
    assert core.returncode == 0, rest


def test_the_core_serves_from_aerospike_with_its_ledger_beside_it(aerospike_url: AerospikeUrl) -> None:
    """Every area is on Aerospike now (the ledger single-writer in <data dir>/ledger.sqlite3):
    a core on it starts and serves, naming the store."""
    hosts = ",".join(f"{h}:{p}" for h, p in aerospike_url.hosts)
    url = f"aerospike://{hosts}/{aerospike_url.namespace}?set_prefix={aerospike_url.set_prefix}core_"
    with tempfile.TemporaryDirectory() as data:
        core = _core({"ASG_DATA_DIR": data, "ASG_STORE": url})
        lines, rest = until_serving(core)
        serving = [json.loads(line) for line in lines if "core serving" in line]
        assert serving and serving[0]["store"] == url, "".join(lines) + rest
        assert (Path(data) / "ledger.sqlite3").exists()
    assert "Traceback" not in rest
