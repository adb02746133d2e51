"""The fault campaign (`make chaos`; a short run is tests/chaos/test_chaos.py).

The real stack runs on loopback (rig.py) while customers submit over REST (load.py). Each
round breaks one thing for a few seconds (faults.py) and puts it back. Then the campaign goes
quiet until every task is final, and checks from the store and the API (audit.py) that every
acknowledged task and acked label is stored exactly once, nothing is stuck, every decided task
is billed and settled once, each worker to pay was paid exactly once, the ledger reconciles,
every webhook event was delivered, and no request got a 5xx other than "core unavailable".
It prints one row per round and exits 1 on any violation.

    .venv/bin/python -m tests.chaos.campaign --rounds 22 [--seed N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.chaos.audit import Findings, audit, fetch_usage, open_work
from tests.chaos.faults import FAULTS
from tests.chaos.load import Customer, Seen
from tests.chaos.rig import Rig

CUSTOMERS = 3
COLUMNS = (
    "round",
    "fault",
    "requests",
    "acked",
    "lost",
    "duplicated",
    "stuck",
    "503/504",
    "no answer",
    "5xx",
)


@dataclass
class Report:
    rows: list[tuple[object, ...]]
    findings: Findings
    crashes: list[str]
    samples: list[str] = field(default_factory=list)  # 5xx answers, as the customers saw them
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        totals = [sum(int(row[i]) for row in self.rows) for i in (4, 5, 6, 9)]  # type: ignore[call-overload]
        return not any(totals) and not self.findings.violations and not self.crashes

    def table(self) -> str:
        rows = [COLUMNS, *self.rows]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(COLUMNS))]
        lines = [
            "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in rows
        ]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def text(self) -> str:
        out = [self.table(), ""]
        out += [f"{name}: {value}" for name, value in self.findings.totals.items()]
        out.append(f"time: {self.seconds:.0f} s")
        for title, items in (
            ("processes that died by themselves", self.crashes),
            ("5xx answers", self.samples),
            ("violations", self.findings.violations),
        ):
            if items:
                out += ["", f"{title}:", *(f"  {item}" for item in items)]
        out += ["", "OK: every invariant held" if self.ok else "FAILED: see above"]
        return "\n".join(out)


def fault_plan(rounds: int, rng: random.Random) -> list[str]:
    """Every fault once per cycle of len(FAULTS) rounds, each cycle in a shuffled order."""
    plan: list[str] = []
    while len(plan) < rounds:
        cycle = list(FAULTS)
        rng.shuffle(cycle)
        plan += cycle
    return plan[:rounds]


def register(base_url: str, name: str) -> dict:
    email = f"chaos-{name}-{uuid.uuid4().hex[:8]}@example.com"
    reply = httpx.post(f"{base_url}/v1/customers", json={"name": name, "email": email}, timeout=10)
    reply.raise_for_status()
    return reply.json()


def run(
    workdir: Path,
    faults: Sequence[str],
    seed: int = 0,
    round_seconds: float = 6.0,
    quiet_timeout: float = 90.0,
    log: Callable[[str], None] = print,
) -> Report:
    started = time.monotonic()
    rng = random.Random(seed)
    rig = Rig(workdir)
    seen = Seen()
    customers: list[Customer] = []
    try:
        rig.start()
        base = rig.stack.base_url
        keys: dict[str, str] = {}
        for i in range(CUSTOMERS):
            body = register(base, f"c{i}")
            keys[body["customer_id"]] = body["api_key"]
            callback = None
            if i == 0:  # this one's tasks send their events to the scripted receiver
                callback = rig.receiver.url
                reply = httpx.post(
                    f"{base}/v1/webhooks",
                    json={"callback_url": callback, "secret": "whsec_chaos_secret"},
                    headers={"Authorization": f"Bearer {body['api_key']}"},
                    timeout=10,
                )
                reply.raise_for_status()
            customers.append(Customer(base, body["api_key"], f"c{i}", seen, seed * 100 + i, callback))
        hooked = next(iter(keys))
        for customer in customers:
            customer.start()
            customer.running.set()

        for round_no, name in enumerate(faults, start=1):
            seen.round = round_no
            round_start = time.monotonic()
            time.sleep(1.0)
            FAULTS[name](rig, rng)
            time.sleep(max(0.5, round_seconds - (time.monotonic() - round_start)))
            rig.thaw_all()
            rig.revive(round_no)
            log(f"round {round_no}: {name} ({time.monotonic() - round_start:.1f} s)")

        seen.round = len(faults) + 1  # what is still retrying lands in no round
        for customer in customers:
            customer.running.clear()
            customer.stopping.set()
        for customer in customers:
            customer.join(timeout=30)
        db_path = rig.stack.data_dir / "asg.sqlite3"
        quiet = time.monotonic()
        while (left := open_work(db_path)) and time.monotonic() < quiet + quiet_timeout:
            time.sleep(0.5)
        log(f"quiet: {left} tasks or deliveries still open after {time.monotonic() - quiet:.0f} s")
        rig.witness.stop()
        findings = audit(
            db_path,
            seen,
            rig.witness.worker_id,
            dict(rig.witness.acked),
            fetch_usage(base, keys),
            hooked,
            rig.delivered_ids(),
        )
    finally:
        for customer in customers:
            customer.stopping.set()
        rig.stop()

    rows: list[tuple[object, ...]] = []
    samples = []
    for round_no, name in enumerate(faults, start=1):
        tally = seen.rounds.get(round_no)
        if tally is None:
            continue
        rows.append(
            (
                round_no,
                name,
                tally.requests,
                tally.acked,
                findings.lost[round_no],
                findings.duplicated[round_no],
                findings.stuck[round_no],
                tally.unavailable,
                tally.refused,
                tally.errors,
            )
        )
        samples += [f"round {round_no}: {s}" for s in tally.samples]
    return Report(rows, findings, rig.crashes, samples, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=len(FAULTS) * 2, help="rounds, one fault each")
    parser.add_argument("--seed", type=int, default=1, help="orders the faults and their timings")
    parser.add_argument("--round-seconds", type=float, default=6.0)
    parser.add_argument("--workdir", type=Path, help="keep the data and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    plan = fault_plan(args.rounds, random.Random(args.seed))
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = run(args.workdir, plan, args.seed, args.round_seconds)
    else:
        with tempfile.TemporaryDirectory(prefix="asg-chaos-") as tmp:
            report = run(Path(tmp), plan, args.seed, args.round_seconds)
    print(report.text(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
