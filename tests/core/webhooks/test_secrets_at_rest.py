"""Secrets at rest (issue 15, defect 7): the data dir is the core's user's alone, and webhook
signing secrets are sealed in the store, including ones stored in clear by an older core."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
from pathlib import Path

import orjson
import pytest

from asg_gateway import verify_webhook_signature
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.settings import Settings
from asg_grpc.store.sqlite import MIGRATIONS, SQLiteStore
from asg_grpc.store.webhook_records import NewDelivery
from asg_grpc.webhooks.worker import WebhookWorker
from tests.conftest import make_stack, register, register_webhook
from tests.core.webhooks.receiver import Receiver

SECRET = "whsec_find_me_if_you_can_0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def on_disk(db: Path) -> bytes:
    """Every byte the store keeps: the database file and its WAL."""
    return b"".join(p.read_bytes() for p in (db, db.with_name(f"{db.name}-wal")) if p.exists())


@pytest.mark.slow
def test_a_started_core_keeps_its_files_private_and_the_secret_sealed(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack:
        key = register(stack.base_url)["api_key"]
        register_webhook(stack.base_url, key, "https://example.com/hook", SECRET)
        data = stack.data_dir
        assert mode(data) == 0o700
        for name in ("asg.sqlite3", "asg.sqlite3-wal", "asg.sqlite3-shm", "sealing_key", "wallet.wif"):
            assert mode(data / name) == 0o600, name
        assert SECRET.encode() not in on_disk(data / "asg.sqlite3")


def test_an_older_stores_data_files_become_private_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "asg.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
    path.chmod(0o644)
    SQLiteStore(path).close()
    assert mode(path) == 0o600


def old_store_with_a_clear_secret(path: Path) -> str:
    """A database as the core before sealing left it: one webhook, its secret in clear."""
    sealing = "RENAME COLUMN secret TO clear_secret"
    before = next(i for i, script in enumerate(MIGRATIONS) if sealing in script)
    with sqlite3.connect(path, isolation_level=None) as db:
        for script in MIGRATIONS[:before]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version={before}")
        db.execute(
            "INSERT INTO webhooks (webhook_id, customer_id, callback_url, secret, events, created_at)"
            " VALUES ('whk_old', 'cus_1', ?, ?, ?, ?)",
            ("https://127.0.0.1/old", SECRET, orjson.dumps(["task.verified"]).decode(), time.time()),
        )
    return "whk_old"


@pytest.mark.asyncio
async def test_a_secret_stored_in_clear_is_sealed_and_still_signs(tmp_path: Path) -> None:
    path = tmp_path / "asg.sqlite3"
    webhook_id = old_store_with_a_clear_secret(path)
    assert SECRET.encode() in on_disk(path)
    sealer = Sealer(bytes(range(32)))
    receiver = Receiver().start()
    store = SQLiteStore(path)
    try:
        assert store.seal_webhook_secrets(lambda hook, secret: seal_webhook_secret(sealer, hook, secret)) == 1
        assert store.seal_webhook_secrets(lambda hook, secret: seal_webhook_secret(sealer, hook, secret)) == 0
        store._db.execute("UPDATE webhooks SET callback_url = ?", (receiver.url,))
        store.fan_out(
            [], [NewDelivery("dlv_1", webhook_id, "evt_1", "task.verified", b'{"id": "evt_1"}')], 1.0
        )
        # Its receiver is plain http:// on 127.0.0.1: what development mode allows.
        settings = Settings(allow_private_urls=True, dev_mode=True, webhook_timeout=2.0)
        worker = WebhookWorker(store, settings, sealer)
        await worker.start()
        try:
            for _ in range(200):
                if receiver.requests:
                    break
                await asyncio.sleep(0.02)
        finally:
            await worker.stop()
    finally:
        store.close()
        receiver.stop()
    (request,) = receiver.requests
    assert verify_webhook_signature(request.body, request.headers["ASG-Signature"], SECRET) == {"id": "evt_1"}
    assert SECRET.encode() not in on_disk(path)
