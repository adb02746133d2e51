"""Labeling throughput and latency with simulated agents, and the bare-streams ceiling.

Starts its own stack (core + gateway on free loopback ports, a temporary data dir) and N
simulated agents (`asg-worker --labeler simulated`, real processes), then:

1. throughput: submits `--tasks` tasks of threshold 3 in batches of 1000 and counts the labels
   that are durable (rows in the SQLite file, read by another connection) until all are in;
2. latency: submits tasks at a steady `--rate` per second for `--seconds` and reports
   submit → verified (`decided_at - created_at` of each task) p50/p99;
3. ceiling: 8 bare grpc.aio bidirectional streams whose server inserts one SQLite row per
   message and acks it (bench/_ceiling_streams.py), same machine, same run.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/labels.py [--tasks 20000] [--agents 8] [--rate 1000] [--seconds 10]
        [--method majority|adaptive]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, free_addr

THRESHOLD = 3
BATCH = 1000
CEILING = Path(__file__).with_name("_ceiling_streams.py")
TARGET_LABELS = 6000.0
TARGET_RATIO = 0.45
TARGET_P50_MS = 1000.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def tasks_body(start: int, count: int, prefix: str, method: str) -> dict[str, object]:
    return {
        "tasks": [
            {
                "type": "image_classification",
                "data_url": f"https://example.com/{prefix}/{i}.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
                "consensus_threshold": THRESHOLD,
                "consensus_method": method,
            }
            for i in range(start, start + count)
        ]
    }


def count(db: sqlite3.Connection, sql: str) -> int:
    return db.execute(sql).fetchone()[0]


def throughput(http: httpx.Client, db: sqlite3.Connection, tasks: int, method: str) -> dict[str, object]:
    bodies = [tasks_body(i, min(BATCH, tasks - i), "t", method) for i in range(0, tasks, BATCH)]
    expected = tasks * THRESHOLD
    started = time.monotonic()
    for body in bodies:
        reply = http.post("/v1/tasks/batch", json=body)
        reply.raise_for_status()
    submitted = time.monotonic() - started
    first = None
    done = 0
    while done < expected and time.monotonic() - started < 300:
        done = count(db, "SELECT count(*) FROM labels")
        if first is None and done:
            first = (time.monotonic(), done)
        time.sleep(0.05)
    end = time.monotonic()
    assert first is not None and done >= expected, f"only {done} of {expected} labels"
    elapsed = end - started
    log(f"throughput: {done} labels in {elapsed:.2f}s (submitting took {submitted:.2f}s)")
    return {
        "tasks": tasks,
        "labels": done,
        "seconds": round(elapsed, 3),
        "labels_per_s": round(done / elapsed),
        "submit_seconds": round(submitted, 3),
    }


def latency(
    http: httpx.Client, db: sqlite3.Connection, rate: int, seconds: float, method: str
) -> dict[str, object]:
    per_batch = max(1, rate // 20)  # 20 batches a second
    interval = per_batch / rate
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        http.post("/v1/tasks/batch", json=tasks_body(sent, per_batch, "l", method)).raise_for_status()
        sent += per_batch
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not count(db, "SELECT count(*) FROM tasks WHERE data_url LIKE '%/l/%' AND decided_at IS NULL"):
            break
        time.sleep(0.1)
    waits = sorted(
        (decided - created) * 1000
        for created, decided in db.execute(
            "SELECT created_at, decided_at FROM tasks WHERE data_url LIKE '%/l/%'"
        )
    )
    log(f"latency: {len(waits)} tasks at {rate}/s, interval {interval:.3f}s")
    return {
        "rate_tasks_per_s": rate,
        "tasks": len(waits),
        "p50_ms": round(statistics.median(waits), 1),
        "p99_ms": round(waits[int(0.99 * (len(waits) - 1))], 1),
    }


def ceiling(streams: int, seconds: float, window: int, tmp: Path) -> dict[str, object]:
    port = int(free_addr().rsplit(":", 1)[1])
    server = subprocess.Popen(
        [sys.executable, str(CEILING), "serve", str(port), str(tmp / "ceiling.sqlite3")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        drivers = [
            subprocess.Popen(
                [sys.executable, str(CEILING), "drive", str(port), str(seconds), str(window)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(streams)
        ]
        acked = sum(int(d.communicate(timeout=seconds + 30)[0].strip()) for d in drivers)
    finally:
        server.terminate()
        server.wait(10)
    log(f"ceiling: {acked} messages in {seconds}s over {streams} streams")
    return {"streams": streams, "messages_per_s": round(acked / seconds), "window": window}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--rate", type=int, default=1000, help="tasks/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    parser.add_argument("--ceiling-seconds", type=float, default=10.0)
    parser.add_argument(
        "--method",
        choices=("majority", "adaptive"),
        default="majority",
        help="consensus_method of every task (adaptive: the threshold is its minimum of labels)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="asg-bench-labels-") as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(
            http_addr=free_addr(),
            grpc_addr=free_addr(),
            data_dir=tmp / "data",
            log_dir=tmp / "logs",
            # One key at thousands of tasks a second: the sandbox rate limit would refuse it.
            env={"ASG_SANDBOX_LABEL_QUOTA": str(10**9), "ASG_LOG_LEVEL": "WARNING", "ASG_RATE_LIMIT": "off"},
        )
        stack.start()
        try:
            stack.wait_ready()
            stack.start_workers(args.agents, "--max-in-flight", str(args.max_in_flight), "--accuracy", "1.0")
            with httpx.Client(base_url=stack.base_url, timeout=60) as http:
                key = http.post("/v1/customers", json={"name": "bench", "email": "bench@example.com"})
                http.headers["Authorization"] = f"Bearer {key.json()['api_key']}"
                db = sqlite3.connect(f"file:{stack.data_dir / 'asg.sqlite3'}?mode=ro", uri=True)
                time.sleep(1.0)  # agents connected
                result_throughput = throughput(http, db, args.tasks, args.method)
                result_latency = latency(http, db, args.rate, args.seconds, args.method)
                db.close()
        finally:
            stack.stop()
        result_ceiling = ceiling(8, args.ceiling_seconds, args.max_in_flight, tmp)

    ratio = result_throughput["labels_per_s"] / result_ceiling["messages_per_s"]  # type: ignore[operator]
    print(
        json.dumps(
            {
                "machine": machine(),
                "method": args.method,
                "agents": args.agents,
                "max_in_flight": args.max_in_flight,
                "throughput": result_throughput,
                "latency": result_latency,
                "ceiling": result_ceiling,
                "throughput_vs_ceiling": round(ratio, 3),
                "targets": {
                    "labels_ge_6000_per_s": result_throughput["labels_per_s"] >= TARGET_LABELS,  # type: ignore[operator]
                    "ge_45pct_of_ceiling": ratio >= TARGET_RATIO,
                    "p50_le_1s": result_latency["p50_ms"] <= TARGET_P50_MS,  # type: ignore[operator]
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
