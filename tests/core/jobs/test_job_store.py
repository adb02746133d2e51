"""The job tables against a real SQLite file: what erasing credentials leaves on disk."""

from __future__ import annotations

import time
from pathlib import Path

from asg_grpc.domain.jobs import JobSpec
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.settlement.verified import make_customer

MARKER = b"SEALED-CREDENTIALS-MARKER-0123456789"


def files(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("asg.sqlite3*")))


def test_erased_credentials_leave_neither_the_database_nor_its_wal(
    store: SQLiteStore, tmp_path: Path
) -> None:
    spec = JobSpec("s3://bucket/m.jsonl", "image_classification", "Q", ("a", "b"), 3, None)
    customer = make_customer(store, 1000, time.time())
    store.create_job("job_x", customer, spec, MARKER, time.time())
    assert MARKER in files(tmp_path), "stored while the manifest is read"
    store.start_ingesting("job_x", time.time())
    store.fail_job("job_x", "the manifest is empty", time.time())
    assert MARKER not in files(tmp_path)
