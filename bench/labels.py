"""Labeling throughput and latency with simulated agents, and the bare-streams ceiling.

Starts its own stack (core + gateway on free loopback ports, a temporary data dir) and N
simulated agents (`asg-worker --labeler simulated`, real processes), then:

1. throughput: submits `--tasks` tasks of threshold 3 in batches of 1000 and counts the labels
   that are durable (3 per decided task, from the store's status counts read through another
   connection: every agent is right, so each decision takes exactly 3 labels) until all are in;
2. latency: submits tasks at a steady `--rate` per second for `--seconds` and reports
   submit → verified (`decided_at - created_at` of each task, read from the store) p50/p99;
3. ceiling: 8 bare grpc.aio bidirectional streams whose server inserts one SQLite row per
   message and acks it (bench/_ceiling_streams.py), same machine, same run.

Prints one JSON object on stdout; progress on stderr.

`--store URL` runs the stack on that store (default: SQLite in the temporary data dir; an
`aerospike://` URL needs an empty set prefix, e.g. `?set_prefix=bench_labels_<n>_`), and
`--cores 2` (a shared store only) runs a second core with an agent per worker on each.

    .venv/bin/python bench/labels.py [--tasks 20000] [--agents 8] [--rate 1000] [--seconds 10]
        [--method majority|adaptive] [--store URL] [--cores 1|2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, free_addr
from asg_grpc.store import Store
from asg_grpc.store.open import open_store, sqlite_url

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


def submit_batch(http: httpx.Client, body: dict[str, object]) -> httpx.Response:
    """POST /v1/tasks/batch, again after Retry-After while the service answers 503 (a shared
    store under load does, as docs/api.md says), as a client would; any other error raises."""
    for _ in range(10):
        reply = http.post("/v1/tasks/batch", json=body)
        if reply.status_code != 503:
            break
        log(f"503, retrying after {reply.headers.get('Retry-After', '1')} s")
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    reply.raise_for_status()
    return reply


def decided_labels(store: Store) -> int:
    """Labels of the decided tasks (3 each: every agent answers right)."""
    totals = store.status_totals()
    return THRESHOLD * sum(totals.get(status, 0) for status in ("verified", "settled"))


def throughput(http: httpx.Client, store: Store, tasks: int, method: str) -> dict[str, object]:
    bodies = [tasks_body(i, min(BATCH, tasks - i), "t", method) for i in range(0, tasks, BATCH)]
    expected = tasks * THRESHOLD
    started = time.monotonic()
    for body in bodies:
        submit_batch(http, body)
    submitted = time.monotonic() - started
    first = None
    done = 0
    while done < expected and time.monotonic() - started < 300:
        done = decided_labels(store)
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
    http: httpx.Client, store: Store, customer_id: str, rate: int, seconds: float, method: str
) -> dict[str, object]:
    per_batch = max(1, rate // 20)  # 20 batches a second
    interval = per_batch / rate
    started = time.monotonic()
    sent = 0
    task_ids: list[str] = []
    while time.monotonic() - started < seconds:
        reply = submit_batch(http, tasks_body(sent, per_batch, "l", method))
        task_ids += reply.json()["task_ids"]
        sent += per_batch
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    deadline = time.monotonic() + 60
    waits: list[float] = []
    left = task_ids
    while left and time.monotonic() < deadline:
        undecided = []
        for task_id in left:
            task = store.get_task(customer_id, task_id)
            if task is not None and task.verdict is not None:
                waits.append((task.verdict.decided_at - task.created_at) * 1000)
            else:
                undecided.append(task_id)
        left = undecided
        time.sleep(0.1)
    waits.sort()
    log(f"latency: {len(waits)} of {len(task_ids)} tasks decided at {rate}/s, interval {interval:.3f}s")
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
    parser.add_argument("--store", metavar="URL", help="the stack's store (default: SQLite in its data dir)")
    parser.add_argument(
        "--cores", type=int, choices=(1, 2), default=1, help="2: a second core (shared store)"
    )
    args = parser.parse_args()
    if args.cores == 2 and not (args.store or "").startswith("aerospike://"):
        parser.error("--cores 2 needs a shared store: --store aerospike://…")

    with tempfile.TemporaryDirectory(prefix="asg-bench-labels-") as tmp_name:
        tmp = Path(tmp_name)
        store_url = args.store or sqlite_url(tmp / "data" / "asg.sqlite3")
        stack = Stack(
            http_addr=free_addr(),
            grpc_addr=free_addr(),
            data_dir=tmp / "data",
            log_dir=tmp / "logs",
            # One key at thousands of tasks a second: the sandbox rate limit would refuse it.
            env={
                "ASG_SANDBOX_LABEL_QUOTA": str(10**9),
                "ASG_LOG_LEVEL": "WARNING",
                "ASG_RATE_LIMIT": "off",
                "ASG_STORE": store_url,
            },
        )
        stack.start()
        try:
            stack.wait_ready()
            cores = [stack.grpc_addr]
            if args.cores == 2:
                cores.append(free_addr())
                stack.spawn("core-2", ["asg-server"], env={"ASG_GRPC_ADDR": cores[1]})
                time.sleep(5.0)  # the second core joined and took its half of the partitions
            stack.start_workers(
                args.agents, "--max-in-flight", str(args.max_in_flight), "--accuracy", "1.0", servers=cores
            )
            with httpx.Client(base_url=stack.base_url, timeout=60) as http:
                key = http.post("/v1/customers", json={"name": "bench", "email": "bench@example.com"})
                http.headers["Authorization"] = f"Bearer {key.json()['api_key']}"
                customer_id = key.json()["customer_id"]
                store = open_store(store_url)
                time.sleep(1.0)  # agents connected
                try:
                    result_throughput = throughput(http, store, args.tasks, args.method)
                    result_latency = latency(http, store, customer_id, args.rate, args.seconds, args.method)
                finally:
                    store.close()
        finally:
            stack.stop()
        result_ceiling = ceiling(8, args.ceiling_seconds, args.max_in_flight, tmp)

    ratio = result_throughput["labels_per_s"] / result_ceiling["messages_per_s"]  # type: ignore[operator]
    print(
        json.dumps(
            {
                "machine": machine(),
                "method": args.method,
                "store": store_url.partition(":")[0],
                "cores": args.cores,
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
