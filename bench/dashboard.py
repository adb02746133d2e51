"""Dashboard reads at scale: p50/p99 of each /v1/dashboard endpoint over real HTTP, with
`--tasks` tasks for one customer and as many for another, including pages deep in the list.

Starts a real stack (core + gateway processes, SQLite), registers two customers, then loads
their tasks straight into the store file with one bulk INSERT per chunk, counted in the same
transaction by the store's own counter code (sqlite_dashboard.count_inserted), spread over
the last 90 days and over every status (most settled). Then, per endpoint, `--warmup` calls not
timed and `--requests` sequential calls timed.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/dashboard.py [--tasks 1000000] [--requests 200] [--warmup 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, free_addr
from asg_grpc.store.sqlite.dashboard import count_inserted

CHUNK = 50_000
MIX = (
    ["settled"] * 80
    + ["pending"] * 8
    + ["in_progress"] * 4
    + ["verified"] * 4
    + ["failed"] * 2
    + ["cancelled"] * 2
)


def load(db_path: Path, customer_id: str, n: int, now: float, prefix: str) -> None:
    db = sqlite3.connect(db_path, timeout=60)
    db.execute("PRAGMA busy_timeout=60000")
    for start in range(0, n, CHUNK):
        rows = []
        for i in range(start, min(n, start + CHUNK)):
            status = MIX[i % len(MIX)]
            created = now - 90 * 86400 * (n - i) / n
            decided = status in ("settled", "verified", "failed", "cancelled")
            label = "cat" if status in ("settled", "verified") else None
            agree = 3 if i % 5 else 2
            rows.append(
                (
                    f"tsk_{prefix}{i:010d}",
                    customer_id,
                    status,
                    "image_classification",
                    f"https://example.com/{i}.jpg",
                    "Animal?",
                    '["cat","dog"]',
                    3,
                    created,
                    created,
                    3,
                    label,
                    (agree / 3 if label else 0.0) if decided else None,
                    3 if decided else None,
                    agree if label else (0 if decided else None),
                    created + 5 if decided else None,
                    "ab" * 32 if status == "settled" else None,
                    created + 30 if status == "settled" else None,
                    "sandbox",
                )
            )
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO tasks (task_id, customer_id, status, task_type, data_url, question, options,"
            " consensus_threshold, created_at, updated_at, label_target, consensus_label, confidence,"
            " worker_count, agreement_count, decided_at, bsv_txid, settled_at, tier)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        count_inserted(
            db, [(r[1], r[2], r[8], r[12], r[11], r[13], r[14], r[17], r[3], r[18], r[15]) for r in rows]
        )
        db.execute("COMMIT")
        print(f"  {customer_id}: {min(n, start + CHUNK)} tasks", file=sys.stderr)
    db.close()


def timed(http: httpx.Client, path: str, requests: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):  # cold pages and the checkpoint after the load are not the endpoint
        assert http.get(path).status_code == 200
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        reply = http.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert reply.status_code == 200, reply.text
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20, help="calls per endpoint first, not timed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with Stack(
            free_addr(), free_addr(), data, Path(tmp) / "logs", env={"ASG_RATE_LIMIT": "off"}
        ) as stack:
            keys, ids = [], []
            for name in ("a", "b"):
                body = httpx.post(
                    f"{stack.base_url}/v1/customers", json={"name": name, "email": f"{name}@bench.example"}
                ).json()
                keys.append(body["api_key"])
                ids.append(body["customer_id"])
            db_path = next(data.glob("*.sqlite3"))
            t0 = time.perf_counter()
            for prefix, customer_id in zip("ab", ids, strict=True):
                load(db_path, customer_id, args.tasks, time.time(), prefix)
            load_s = time.perf_counter() - t0
            n, per = args.tasks, 25
            mid, last = (n // per) // 2, -(-n // per)
            settled_mid = int(n * 0.8) // per // 2
            paths = {
                "overview": "/v1/dashboard/overview",
                "quality": "/v1/dashboard/quality",
                "usage": "/v1/dashboard/usage",
                "billing usage": "/v1/billing/usage",
                "billing invoices": "/v1/billing/invoices",
                "tasks page 1": "/v1/dashboard/tasks",
                f"tasks page {mid} (middle)": f"/v1/dashboard/tasks?page={mid}",
                f"tasks page {last} (last)": f"/v1/dashboard/tasks?page={last}",
                f"tasks settled page {settled_mid} (middle)": (
                    f"/v1/dashboard/tasks?status=settled&page={settled_mid}"
                ),
                f"tasks asc page {mid}": f"/v1/dashboard/tasks?sort=created_at_asc&page={mid}",
            }
            with httpx.Client(
                base_url=stack.base_url, headers={"Authorization": f"Bearer {keys[0]}"}
            ) as http:
                results = {
                    name: timed(http, path, args.requests, args.warmup) for name, path in paths.items()
                }
    print(
        json.dumps(
            {
                "tasks_per_customer": n,
                "customers": 2,
                "load_seconds": round(load_s, 1),
                "requests_per_endpoint": args.requests,
                "warmup_per_endpoint": args.warmup,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "endpoints": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
