"""The challenge gateway's cost: pass-through throughput and the latency it adds, against the
same upstream served directly, side by side in one run; and risk scoring per request.

Starts the demo site (`asg_challenge/demo_site.py`, the upstream `make run` uses) and
`asg-challenge` in front of it, both as processes. Pass-through traffic: browser headers, no
cookies, `risk_threshold` 1.0 and no explore share, so every request goes the whole decision
path (session, header signals, features, the risk score, the rule lookup) and is then streamed
to the upstream. `wrk` (C) is the client. Each round measures, in this order, direct and
proxied throughput (`--connections` connections) and direct and proxied latency (one connection,
so the figures are service time, not queueing), the two sides' order swapped every round; the
medians over `--rounds` rounds are reported, the throughput ratio as the median of the rounds'
own ratios. Every run also reports the CPU the upstream, the gateway and wrk spent per request
(/proc and the children's rusage), the load average, and the CPU other processes used.

Risk scoring is timed in this process, in CPU time of the thread: the header signals and
feature update of one request (`observe`) and its score, over the heuristic and over a fitted
model, for a session early on and one 200 requests in, each session a client of its own.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/challenge.py [--rounds 3] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' browser headers
from submit import WRK_DONE, ForeignCpu, cpu_seconds  # bench/submit.py: wrk's JSON report; CPU others used

from asg_challenge.context import client_of, observe
from asg_challenge.gateway import Gateway
from asg_challenge.ml import FEATURES, Linear
from asg_challenge.settings import parse
from asg_challenge.store import Store
from tests.challenge.conftest import BROWSER_HEADERS as BROWSER
from tests.challenge.conftest import free_port

TARGET_RATIO = 0.5  # of the upstream's direct throughput
TARGET_ADDED_P50_MS = 2.0
TARGET_SCORE_US = 100.0
PASSWORD = "bench-password-0123"
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_http(url: str, **kw: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False, **kw).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within 20 s")


def wrk(url: str, script: Path, connections: int, seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    """One wrk run, with the CPU each of `pids` (and wrk itself) spent per request in it."""
    headers = [arg for k, v in BROWSER.items() for arg in ("-H", f"{k}: {v}")]
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    children = os.times()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), *headers, url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    after = os.times()
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
    run: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    run["rps"] = round(run["requests"] / (run["duration_us"] / 1e6), 1)
    n = max(run["requests"], 1)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    used["wrk"] = (
        after.children_user + after.children_system - children.children_user - children.children_system
    )
    run["cpu_us_per_request"] = {name: round(sec / n * 1e6, 1) for name, sec in used.items()}
    return run


def scoring(data_dir: Path) -> dict[str, Any]:
    """µs per request of `observe` + `score`: heuristic and model, early and long sessions."""
    settings = parse(
        ["--listen", "127.0.0.1:1", "--upstream", "http://127.0.0.1:1", "--data-dir", str(data_dir)],
        {"ASG_CHALLENGE_DASHBOARD_PASSWORD": PASSWORD},
    )
    gw = Gateway(settings, Store(data_dir))
    headers = [(k.lower().encode(), v.encode()) for k, v in {**BROWSER, "Host": "shop.example"}.items()]
    scope = {
        "type": "http", "method": "GET", "path": "/products", "raw_path": b"/products", "query_string": b"",
        "headers": headers, "client": ("203.0.113.9", 50000), "server": ("127.0.0.1", 8090), "scheme": "http",
    }  # fmt: skip
    rnd = random.Random(7)
    model = Linear(
        tuple(rnd.uniform(0, 5) for _ in FEATURES),
        tuple(rnd.uniform(0.5, 2) for _ in FEATURES),
        tuple(rnd.uniform(-1, 1) for _ in FEATURES),
        -0.5,
    )

    def per_request(n: int, warm: int) -> float:
        """CPU µs (this thread's: a neighbour's burst that preempts us is not counted) for one
        request's client + observe + score, over `n` fresh sessions, each a client of its own
        network (no cache of a previous session helps) first given `warm` earlier requests."""
        total = 0.0
        for i in range(n):
            now = time.time() - warm
            own = {**scope, "client": (f"198.{i % 200}.{warm % 250}.{i // 200 + 1}", 50000)}
            for j in range(warm):
                r = Request(own)
                cj = client_of(r, gw)
                observe(r, cj, gw.session(cj.sid, now + j), now + j)
            request = Request(own)
            t0 = time.thread_time()
            c = client_of(request, gw)
            s = gw.session(c.sid, time.time())
            observe(request, c, s, time.time())
            gw.score(s)
            total += time.thread_time() - t0
        return round(total / n * 1e6, 1)

    out = {}
    for label, warm in (("first_request", 0), ("request_10", 9), ("request_200", 199)):
        out[f"heuristic_{label}_us"] = per_request(300, warm)
    gw.trainer.model = model
    for label, warm in (("request_10", 9), ("request_59", 58), ("request_200", 199)):
        out[f"model_{label}_us"] = per_request(300, warm)
    gw.store.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    p.add_argument("--connections", type=int, default=32, help="wrk connections of a throughput run")
    a = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-challenge-"))
    site, gw_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASG_CHALLENGE_")}
    env |= {"ASG_CHALLENGE_DASHBOARD_PASSWORD": PASSWORD, "ASG_CHALLENGE_EXPLORE": "0"}
    env["ASG_CHALLENGE_LOG_LEVEL"] = "WARNING"
    demo = [str(BIN / "python"), "-m", "asg_challenge.demo_site", "--listen", f"127.0.0.1:{site}"]
    procs = [
        subprocess.Popen(demo),
        subprocess.Popen(
            [str(BIN / "asg-challenge"), "--listen", f"127.0.0.1:{gw_port}",
             "--upstream", f"http://127.0.0.1:{site}", "--data-dir", str(tmp / "gateway")],
            env=env,
        ),
    ]  # fmt: skip
    try:
        direct, proxied = f"http://127.0.0.1:{site}/products", f"http://127.0.0.1:{gw_port}/products"
        wait_http(direct)
        wait_http(f"http://127.0.0.1:{gw_port}/dashboard/api/metrics", auth=("admin", PASSWORD))
        r = httpx.post(
            f"http://127.0.0.1:{gw_port}/dashboard/api/config",
            json={"risk_threshold": 1.0}, auth=("admin", PASSWORD), trust_env=False,
        )  # fmt: skip
        r.raise_for_status()
        check = httpx.get(proxied, headers=BROWSER, trust_env=False)
        assert check.status_code == 200 and "<h1>Products</h1>" in check.text, check.text[:200]
        script = tmp / "report.lua"
        script.write_text(WRK_DONE)
        log("warm-up")
        gw_pids = {"upstream": procs[0].pid, "gateway": procs[1].pid}
        wrk(direct, script, a.connections, 1, gw_pids)
        wrk(proxied, script, a.connections, 1, gw_pids)
        rounds: list[dict[str, Any]] = []
        meter = ForeignCpu([p.pid for p in procs])
        load_before = os.getloadavg()
        for i in range(a.rounds):
            # Interleaved, and the order swapped every round: neither side always runs first
            # (into a neighbour's burst, or right after the other side warmed the upstream).
            order = ("direct", "proxied") if i % 2 == 0 else ("proxied", "direct")
            urls = {"direct": direct, "proxied": proxied}
            run: dict[str, Any] = {}
            for conns, phase in ((a.connections, "load"), (1, "c1")):
                for side in order:
                    run[f"{side}_{phase}"] = wrk(urls[side], script, conns, a.seconds, gw_pids)
            rounds.append(run)
            load, c1 = (run["direct_load"], run["proxied_load"]), (run["direct_c1"], run["proxied_c1"])
            log(
                f"round {i + 1}: rps direct {load[0]['rps']} proxied {load[1]['rps']}; "
                f"one connection p50 µs direct {c1[0]['p50_us']} proxied {c1[1]['p50_us']}; "
                f"gateway CPU µs/request {load[1]['cpu_us_per_request']['gateway']}"
            )
        foreign = meter.cores()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

    def med(phase: str, field: str) -> float:
        return float(statistics.median(r[phase][field] for r in rounds))

    def cpu(phase: str) -> dict[str, float]:
        names = rounds[0][phase]["cpu_us_per_request"]
        return {k: float(statistics.median(r[phase]["cpu_us_per_request"][k] for r in rounds)) for k in names}

    # Each round's direct and proxied runs are seconds apart (paired): the median of the
    # rounds' ratios is the headline, less at the mercy of a neighbour's burst in one run.
    paired = [r["proxied_load"]["rps"] / r["direct_load"]["rps"] for r in rounds]
    ratio = float(statistics.median(paired))
    added_p50 = (med("proxied_c1", "p50_us") - med("direct_c1", "p50_us")) / 1000
    added_p99 = (med("proxied_c1", "p99_us") - med("direct_c1", "p99_us")) / 1000
    log("risk scoring, in process")
    score = scoring(tmp / "scoring")
    worst_score = max(v for k, v in score.items() if k.endswith("_us"))
    errors = sum(r[ph]["non_2xx"] + r[ph]["socket_errors"] for r in rounds for ph in r)
    print(
        json.dumps(
            {
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg(),
                    "foreign_cpu_cores": foreign,
                },
                "settings": vars(a),
                "throughput_rps": {
                    "direct": med("direct_load", "rps"),
                    "proxied": med("proxied_load", "rps"),
                    "ratio": round(ratio, 3),  # median of the rounds' ratios
                    "ratio_per_round": [round(x, 3) for x in paired],
                    "ratio_of_medians": round(med("proxied_load", "rps") / med("direct_load", "rps"), 3),
                },
                "latency_ms_one_connection": {
                    "direct_p50": med("direct_c1", "p50_us") / 1000,
                    "proxied_p50": med("proxied_c1", "p50_us") / 1000,
                    "added_p50": round(added_p50, 3),
                    "direct_p99": med("direct_c1", "p99_us") / 1000,
                    "proxied_p99": med("proxied_c1", "p99_us") / 1000,
                    "added_p99": round(added_p99, 3),
                },
                "latency_ms_under_load": {
                    "direct_p50": med("direct_load", "p50_us") / 1000,
                    "proxied_p50": med("proxied_load", "p50_us") / 1000,
                    "direct_p99": med("direct_load", "p99_us") / 1000,
                    "proxied_p99": med("proxied_load", "p99_us") / 1000,
                },
                "cpu_us_per_request_under_load": {
                    "direct": cpu("direct_load"),
                    "proxied": cpu("proxied_load"),
                    # The most one gateway process could serve if it had a core to itself.
                    "gateway_one_core_ceiling_rps": round(1e6 / max(cpu("proxied_load")["gateway"], 1.0)),
                },
                "scoring_us": score,
                "errors": errors,
                "targets": {
                    "ratio_ge_0.5": ratio >= TARGET_RATIO,
                    "added_p50_le_2ms": added_p50 <= TARGET_ADDED_P50_MS,
                    "scoring_le_100us": worst_score <= TARGET_SCORE_US,
                },
                "rounds": rounds,
            },
            indent=2,
        )
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
