"""CPU time per label, per process, of the labeling path: a measure that a busy machine
does not move much, unlike labels per second (bench/labels.py).

Starts its own stack (core + gateway, temporary data dir, SQLite) and `--agents` simulated
agents, lets them connect, measures the core's idle CPU rate for `--idle` seconds, then submits
`--tasks` tasks of threshold 3 (batches of 1000, as bench/labels.py) and waits until every
label is durable and every task decided. Over that window it reads the CPU time (user +
system, /proc/PID/stat) of the core, the gateway and the agents; the core's idle rate times
the window is taken off its share. Agents' start-up is outside the window.

With `--profile FILE` the core runs under bench/_profiled_core.py and cProfile records the
same window (the event-loop thread); `python -m pstats FILE` or `--top N` reads it. Runs
against whichever tree's venv runs it, so the same script measures two commits:

    .venv/bin/python bench/labels_cpu.py [--tasks 10000] [--agents 8] [--profile core.prof]
    /other/tree/.venv/bin/python bench/labels_cpu.py ...   # that tree's code

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, free_addr

THRESHOLD = 3
BATCH = 1000
TICKS = os.sysconf("SC_CLK_TCK")
PROFILED_CORE = Path(__file__).with_name("_profiled_core.py")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tasks_body(start: int, count: int, method: str = "majority") -> dict[str, object]:
    return {
        "tasks": [
            {
                "type": "image_classification",
                "data_url": f"https://example.com/cpu/{i}.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
                "consensus_threshold": THRESHOLD,
                "consensus_method": method,
            }
            for i in range(start, start + count)
        ]
    }


def count(db: sqlite3.Connection, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    stack = Stack(
        http_addr=free_addr(),
        grpc_addr=free_addr(),
        data_dir=tmp / "data",
        log_dir=tmp / "logs",
        env={"ASG_SANDBOX_LABEL_QUOTA": str(10**9), "ASG_LOG_LEVEL": "WARNING", "ASG_RATE_LIMIT": "off"},
    )
    if args.profile:
        stack.spawn("core", ["python", str(PROFILED_CORE), str(Path(args.profile).resolve())])
    else:
        stack.start_core()
    stack.spawn("gateway", ["asg-gateway"])
    try:
        stack.wait_ready()
        core = stack.procs["core"].pid
        gateway = stack.procs["gateway"].pid
        stack.start_workers(args.agents, "--max-in-flight", str(args.max_in_flight), "--accuracy", "1.0")
        workers = [p.pid for n, p in stack.procs.items() if n.startswith("worker-")]
        db = sqlite3.connect(f"file:{stack.data_dir / 'asg.sqlite3'}?mode=ro", uri=True)
        with httpx.Client(base_url=stack.base_url, timeout=120) as http:
            key = http.post("/v1/customers", json={"name": "bench", "email": "bench@example.com"})
            http.headers["Authorization"] = f"Bearer {key.json()['api_key']}"
            time.sleep(2.0)  # agents started and connected
            idle_from = (time.monotonic(), cpu_seconds(core))
            time.sleep(args.idle)
            idle_rate = (cpu_seconds(core) - idle_from[1]) / (time.monotonic() - idle_from[0])
            if args.profile:
                os.kill(core, signal.SIGUSR1)
            started = time.monotonic()
            before = {pid: cpu_seconds(pid) for pid in (core, gateway, *workers)}
            for start in range(0, args.tasks, BATCH):
                body = tasks_body(start, min(BATCH, args.tasks - start), args.method)
                http.post("/v1/tasks/batch", json=body).raise_for_status()
        # `majority` with agreeing agents buys exactly the threshold; `adaptive` buys at least it,
        # as many as it takes to be sure: done once every task is decided.
        expected = args.tasks * THRESHOLD
        labels = undecided = 0
        while time.monotonic() - started < 600:
            labels = count(db, "SELECT count(*) FROM labels")
            undecided = count(db, "SELECT count(*) FROM tasks WHERE decided_at IS NULL")
            if labels >= expected and not undecided:
                break
            time.sleep(0.05)
        seconds = time.monotonic() - started
        spent = {pid: cpu_seconds(pid) - cpu for pid, cpu in before.items()}
        core_cpu, gateway_cpu = spent[core], spent[gateway]
        workers_cpu = sum(spent[pid] for pid in workers)
        if args.profile:
            os.kill(core, signal.SIGUSR2)
            time.sleep(1.0)
        db.close()
        assert labels >= expected and not undecided, f"{labels} of {expected} labels, {undecided} undecided"
    finally:
        stack.stop()
    core_busy = core_cpu - idle_rate * seconds
    log(f"{labels} labels in {seconds:.2f}s; core {core_cpu:.2f}s CPU (idle {idle_rate:.3f}/s)")
    return {
        "method": args.method,
        "tasks": args.tasks,
        "labels": labels,
        "seconds": round(seconds, 3),
        "core_cpu_s": round(core_cpu, 3),
        "core_idle_cpu_per_s": round(idle_rate, 4),
        "core_us_per_label": round(core_busy / labels * 1e6, 1),
        # Per decided task: what bench/labels.py's throughput follows (adaptive buys a varying
        # number of labels per task, so its CPU per label hides what a task costs).
        "labels_per_task": round(labels / args.tasks, 3),
        "core_us_per_task": round(core_busy / args.tasks * 1e6, 1),
        "gateway_us_per_label": round(gateway_cpu / labels * 1e6, 1),
        "workers_us_per_label": round(workers_cpu / labels * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds to measure the core's idle CPU")
    parser.add_argument("--profile", help="write the core's cProfile stats of the window here")
    parser.add_argument("--method", choices=("majority", "adaptive"), default="majority",
                        help="consensus_method of every task (adaptive: the threshold is its minimum)")
    parser.add_argument("--top", type=int, default=0, help="with --profile: print the N costliest functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asg-bench-cpu-") as tmp:
        result = measure(args, Path(tmp))
    print(json.dumps(result, indent=2))
    if args.profile and args.top:
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
