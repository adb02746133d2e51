"""Submit throughput: single `POST /v1/tasks`, batches of 1000, and the ceiling to compare with.

Prints one JSON object on stdout (progress goes to stderr). Without `--base-url` it starts its
own stack (free loopback ports, a temporary data dir, a quota of 10**9 labels) on the store
`--store` names (default: SQLite in that data dir), kills the core with SIGKILL at the end and
counts the customer's tasks in the store, so "accepted" is checked to mean "durable against a
process crash". With `--base-url` the stack must have been started with
`ASG_SANDBOX_LABEL_QUOTA=1000000000` (a sandbox customer has 500 labels by default).

Single submits are driven by `wrk` (C, so the client takes little of the CPU the server needs);
without it, by an asyncio httpx client, and the JSON says so. The ceiling (bench/_ceiling.py) is
a bare FastAPI endpoint making one gRPC call to a bare grpc.aio server that inserts one row,
loaded with the same wrk script and connection count.

    .venv/bin/python bench/submit.py [--base-url URL | --store URL] [--duration 10]
                                     [--connections 64] [--batches 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, StackError, free_addr
from asg_grpc.domain.dashboard import TaskQuery
from asg_grpc.settings import Settings
from asg_grpc.store.open import open_store, sqlite_url

QUOTA = 10**9
BATCH_SIZE = 1000
WARMUP_S = 1.0
READY_TIMEOUT = 30.0
CEILING = Path(__file__).with_name("_ceiling.py")
TASK = {
    "type": "image_classification",
    "data_url": "https://example.com/i.jpg",
    "label_spec": {"question": "Q?", "options": ["a", "b"]},
}
# Labels a run may reserve, with room to spare: rates far above what 2 cores do, times the
# default consensus threshold of 3.
LABELS_PER_SECOND = 3 * (50_000 + 500_000)
TARGET_SINGLE = 2000.0
TARGET_RATIO = 0.60
TARGET_BATCH = 40_000.0

# The request comes from the environment so one script serves the stack and the ceiling.
# done() prints what we need as one line of JSON: wrk's text output rounds the percentiles.
WRK_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
WRK_SCRIPT = (
    r"""
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
"""
    + WRK_DONE
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """CPU seconds (utime + stime, all threads) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ForeignCpu.TICK


class ForeignCpu:
    """CPU that processes not ours used during a phase, in cores (0 to nproc).

    The machine is shared: a neighbour's test run lowers every figure, and this says by how
    much CPU it took. Only where the server is ours (not with --base-url).
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.started, self.foreign = self._sample()

    def _sample(self) -> tuple[float, float]:
        """(now, CPU seconds of the whole machine minus those of our processes and of us)."""
        cpu = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = float(sum(cpu) - cpu[3] - cpu[4])  # all but idle and iowait
        for pid in self.pids:
            busy -= cpu_seconds(pid) * self.TICK
        own = os.times()  # children: wrk, waited for before we sample
        mine = own.user + own.system + own.children_user + own.children_system
        return time.monotonic(), busy / self.TICK - mine

    def cores(self) -> float:
        now, foreign = self._sample()
        return round((foreign - self.foreign) / (now - self.started), 2)


@dataclass
class Load:
    """One closed-loop load run: what came back, over how long."""

    client: str
    connections: int
    ok: int
    non_2xx: int
    socket_errors: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    foreign_cpu_cores: float | None = None

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.elapsed_s


def run_wrk(url: str, auth: str, body: bytes, duration: float, connections: int, script: Path) -> Load:
    """wrk with keep-alive connections; `--latency` for the distribution echoed to stderr."""
    command = [
        "wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration:g}s",
        "--timeout", "10s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_AUTH": auth, "BENCH_BODY": body.decode()}
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    summary: dict[str, int] | None = None
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            summary = json.loads(line.removeprefix("BENCH_JSON "))
        else:
            print(f"  {line}", file=sys.stderr)
    if summary is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    return Load(
        client="wrk",
        connections=connections,
        # wrk counts status >= 400 as errors.status; we send nothing that redirects.
        ok=summary["requests"] - summary["non_2xx"],
        non_2xx=summary["non_2xx"],
        socket_errors=summary["socket_errors"],
        elapsed_s=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )


async def run_httpx(url: str, auth: str, body: bytes, duration: float, connections: int) -> Load:
    """The fallback without wrk: one coroutine per keep-alive connection, sending in a loop."""
    latencies: list[float] = []
    counts = {"ok": 0, "non_2xx": 0, "socket_errors": 0}
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10.0, headers=headers) as client:
        deadline = time.monotonic() + duration

        async def connection() -> None:
            while time.monotonic() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=body)
                except httpx.HTTPError:
                    counts["socket_errors"] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                counts["ok" if response.is_success else "non_2xx"] += 1

        start = time.monotonic()
        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed = time.monotonic() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Load(
        client="httpx",
        connections=connections,
        elapsed_s=elapsed,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        **counts,
    )


def load(url: str, auth: str, duration: float, connections: int, script: Path) -> Load:
    body = json.dumps(TASK).encode()
    if shutil.which("wrk"):
        return run_wrk(url, auth, body, duration, connections, script)
    return asyncio.run(run_httpx(url, auth, body, duration, connections))


async def run_batches(
    base_url: str, auth: str, duration: float, clients: int, pids: list[int] | None
) -> dict:
    """`clients` keep-alive connections, each posting batches of 1000 back to back."""
    body = json.dumps({"tasks": [TASK] * BATCH_SIZE}).encode()
    accepted = 0
    rejected: dict[str, int] = {}
    latencies: list[float] = []
    meter = ForeignCpu(pids) if pids is not None else None
    deadline = time.monotonic() + duration

    async def client_loop() -> None:
        nonlocal accepted
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:
            while time.monotonic() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post("/v1/tasks/batch", content=body)
                except httpx.HTTPError as exc:
                    key, detail = type(exc).__name__, str(exc)
                else:
                    latencies.append(time.perf_counter() - sent)
                    if response.status_code == 202 and response.json()["task_count"] == BATCH_SIZE:
                        accepted += 1
                        continue
                    key, detail = str(response.status_code), response.text[:200]
                rejected[key] = rejected.get(key, 0) + 1
                log(f"batch not accepted: {key} {detail}")

    start = time.monotonic()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    elapsed = time.monotonic() - start  # includes the batches still running at the deadline
    return {
        "tasks_per_s": round(BATCH_SIZE * accepted / elapsed, 1),
        "batch_size": BATCH_SIZE,
        "clients": clients,
        "batches_accepted": accepted,
        "non_202": rejected,
        "batch_p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "foreign_cpu_cores": meter.cores() if meter else None,
    }


def register(base_url: str, duration: float) -> tuple[str, str]:
    """A fresh customer with enough quota for the run; (customer_id, "Bearer <key>")."""
    email = f"bench-{time.time_ns()}@example.com"
    response = httpx.post(f"{base_url}/v1/customers", json={"name": "bench", "email": email}, timeout=10.0)
    response.raise_for_status()
    customer = response.json()
    needed = int(LABELS_PER_SECOND * (duration + WARMUP_S))
    if customer["label_quota"] < needed:
        sys.exit(
            f"the customer's quota is {customer['label_quota']} labels, a run may need {needed}:"
            f" start the stack with ASG_SANDBOX_LABEL_QUOTA={QUOTA}"
        )
    return customer["customer_id"], f"Bearer {customer['api_key']}"


def phase_single(
    url: str, auth: str, args: argparse.Namespace, script: Path, pids: list[int] | None
) -> tuple[Load, int]:
    """Warm up, then measure; returns the measured load and every 2xx (warm-up included)."""
    warmup = load(url, auth, WARMUP_S, args.connections, script)
    meter = ForeignCpu(pids) if pids is not None else None
    measured = load(url, auth, args.duration, args.connections, script)
    measured.foreign_cpu_cores = meter.cores() if meter else None
    return measured, warmup.ok + measured.ok


@dataclass
class StackRun:
    """Phases 1 and 2, and what the durability check and the ceiling need from them."""

    single: Load
    batch: dict
    accepted: int  # tasks answered 2xx, warm-up included
    customer_id: str
    auth: str


def measure_stack(base_url: str, args: argparse.Namespace, script: Path, pids: list[int] | None) -> StackRun:
    customer_id, auth = register(base_url, args.duration)
    log(f"single submits: {args.connections} connections, {args.duration:g}s")
    single, single_ok = phase_single(f"{base_url}/v1/tasks", auth, args, script, pids)
    log(f"batches of {BATCH_SIZE}: {args.batches} clients, {args.duration:g}s")
    batch = asyncio.run(run_batches(base_url, auth, args.duration, args.batches, pids))
    accepted = single_ok + BATCH_SIZE * batch["batches_accepted"]
    return StackRun(single, batch, accepted, customer_id, auth)


def check_durable(stack: Stack, store_url: str, customer_id: str, accepted: int) -> dict:
    """SIGKILL the core (no shutdown code runs), then count what the store still holds."""
    stack.kill("core")
    stack.stop()
    store = open_store(store_url)
    try:
        query = TaskQuery(page=1, per_page=1, status=None, newest_first=True)
        stored = store.dashboard_tasks(customer_id, query).total
    finally:
        store.close()
    return {
        "after": "SIGKILL of the core",
        "accepted_2xx_tasks": accepted,
        "tasks_in_store": stored,
        "ok": stored >= accepted,
    }


def measure_ceiling(tmp: Path, synchronous: str, auth: str, args: argparse.Namespace, script: Path) -> Load:
    """Start the two ceiling processes, wait until a POST goes through, load them, stop them."""
    grpc_addr, http_addr = free_addr(), free_addr()
    url = f"http://{http_addr}/v1/tasks"
    log_file = open(tmp / "ceiling.log", "ab")  # noqa: SIM115 - closed in the finally below
    roles = [
        ["grpc", "--addr", grpc_addr, "--db", str(tmp / "ceiling.sqlite3"),
         "--synchronous", synchronous],
        ["http", "--addr", http_addr, "--core", grpc_addr],
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, str(CEILING), *role],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for role in roles
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise StackError(f"the ceiling did not start, see:\n{_tail(tmp / 'ceiling.log')}")
            try:
                if httpx.post(url, content=b"{}", timeout=1.0).status_code == 202:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        log(f"ceiling: {args.connections} connections, {args.duration:g}s")
        # The same requests as to the stack, API key included (the ceiling ignores it).
        measured, _ = phase_single(url, auth, args, script, [p.pid for p in procs])
        return measured
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def machine() -> dict:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    wrk = shutil.which("wrk")
    # `wrk -v` prints "wrk <version> [epoll] Copyright ..." (and exits 1).
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout if wrk else ""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else platform.processor(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version.split()[1] if wrk_version else None,
    }


def latency_json(run: Load) -> dict:
    return {
        "p50_ms": round(run.p50_ms, 2),
        "p99_ms": round(run.p99_ms, 2),
        "non_2xx": run.non_2xx,
        "socket_errors": run.socket_errors,
        "client": run.client,
        "connections": run.connections,
        "foreign_cpu_cores": run.foreign_cpu_cores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url",
        help="a running stack (started with ASG_SANDBOX_LABEL_QUOTA=1000000000); default: start one",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="ASG_STORE of the stack it starts (e.g. aerospike://127.0.0.1:3000/asg); default: SQLite",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64, help="for single submits")
    parser.add_argument("--batches", type=int, default=4, help="concurrent clients posting batches of 1000")
    args = parser.parse_args()
    if args.duration <= 0 or args.connections < 1 or args.batches < 1:
        parser.error("--duration, --connections and --batches must be positive")
    if args.base_url and args.store:
        parser.error("--store is for the stack this starts; a --base-url stack has its own")

    with tempfile.TemporaryDirectory(prefix="asg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "submit.lua"
        script.write_text(WRK_SCRIPT)
        durable: dict | None = None
        if args.base_url:
            # The stack's own setting is not visible over the API: this is our environment's.
            synchronous = Settings.from_env().sqlite_synchronous
            store_kind = "the --base-url stack's"
            run = measure_stack(args.base_url.rstrip("/"), args, script, None)
        else:
            # One key at thousands of requests a second: the sandbox rate limit would refuse it.
            env = {"ASG_SANDBOX_LABEL_QUOTA": str(QUOTA), "ASG_RATE_LIMIT": "off"}
            store_url = args.store or sqlite_url(tmp / "data" / "asg.sqlite3")
            env["ASG_STORE"] = store_url
            store_kind = store_url.partition(":")[0]
            synchronous = Settings.from_env({**os.environ, **env}).sqlite_synchronous
            logs = tmp / "logs"
            stack = Stack(free_addr(), free_addr(), tmp / "data", log_dir=logs, env=env)
            log(f"starting the stack (synchronous={synchronous})")
            try:
                stack.start()
                stack.wait_ready()
                pids = [proc.pid for proc in stack.procs.values()]
                run = measure_stack(stack.base_url, args, script, pids)
                stack.check_alive()
                durable = check_durable(stack, store_url, run.customer_id, run.accepted)
            except BaseException:
                for log_path in sorted(logs.glob("*.log")):
                    log(f"{log_path.name}:\n{_tail(log_path)}")
                raise
            finally:
                stack.stop()
        ceiling = measure_ceiling(tmp, synchronous, run.auth, args, script)

    single, batch = run.single, run.batch
    ratio = single.ok_per_s / ceiling.ok_per_s
    result = {
        "machine": machine(),
        "duration_s": args.duration,
        "single": {"tasks_per_s": round(single.ok_per_s, 1), **latency_json(single)},
        "batch": batch,
        "ceiling": {"req_per_s": round(ceiling.ok_per_s, 1), **latency_json(ceiling)},
        "single_vs_ceiling": round(ratio, 3),
        "targets": {
            "single_ge_2000": single.ok_per_s >= TARGET_SINGLE,
            "single_ge_60pct_ceiling": ratio >= TARGET_RATIO,
            "batch_ge_40000": batch["tasks_per_s"] >= TARGET_BATCH,
        },
        "store": store_kind,
        "synchronous": synchronous,
        "durable": durable,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
