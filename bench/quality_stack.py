"""Consensus quality through the whole product: REST submits, agents over gRPC, REST results.

The proof that the product decides what the domain benchmark (bench/quality.py) says. Per
method and seed it starts its own stack (core + gateway processes, a temporary data dir), then:

1. registers a customer over REST and one worker per worker of DIR's `answers.csv` over gRPC;
2. submits every item (or the first `--items` of them, in a seeded order) over REST as a task
   (`POST /v1/tasks/batch`): the dataset's labels as options, `consensus_method` majority
   (threshold 3) or adaptive (minimum 2, target 0.95, max 10), a `--gold` share of the items
   with their truth as `gold_label`;
3. connects every worker as a simulated agent on a real Work stream (one task at a time, in a
   seeded random order): offered an item it answered in `answers.csv`, it sends that answer;
   any other item it skips, so the dispatcher offers it to someone else. An item whose
   answerers are all used up is closed by the dispatcher ("no worker left");
4. waits for every batch to be decided (`GET /v1/tasks/batch/{id}`), reads each result over
   REST (`GET /v1/tasks/{id}/result`) and scores it against `truth.csv` like bench/quality.py:
   accuracy over the non-gold items (a failed task counts as wrong), labels per item (gold
   included, from the results' `labels`), ECE of `confidence` (10 bins).

It also runs bench/quality.py's domain replay on the same items and seeds, so the JSON shows
both side by side (`stack` and `domain`, and their difference). The customer share cap is off
(`ASG_CUSTOMER_SHARE_CAP=1`): the domain replay has none, and a dataset's busiest workers
would otherwise wait for others who have no answers left. Prints one JSON object.

    nice -n 10 .venv/bin/python bench/quality_stack.py --data ../shared/datasets/crowd/temp --seeds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import httpx
from labels import machine
from quality import Answers, ece, load, replay

from asg_grpc.devstack import Stack, free_addr
from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc

METHODS = ("majority", "adaptive")
BATCH = 1000
OPERATOR = "op_quality_stack"
HEARTBEAT = 5.0  # seconds: well inside the core's 30 s idle timeout
POLL = 0.5
# Figures compared with the domain replay.
FIGURES = ("accuracy", "labels_per_item", "ece", "gave_up")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def subset(answers: Answers, truth: dict[str, str], items: int) -> tuple[Answers, dict[str, str]]:
    """The first `items` items by name (all when 0): the same subset for stack and domain."""
    chosen = sorted(answers)[:items] if items else sorted(answers)
    return {i: answers[i] for i in chosen}, {i: truth[i] for i in chosen}


class Agent:
    """One dataset worker on a Work stream: labels what it answered, skips the rest."""

    def __init__(self, channel: grpc.aio.Channel, token: str, answers: dict[str, str]) -> None:
        self._stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        self._token = token
        self._answers = answers  # item → its answer
        self._out: asyncio.Queue[labeling_pb2.WorkerMessage] = asyncio.Queue()
        self.labels = 0

    async def _requests(self) -> Any:
        yield labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1, agent="quality_stack"))
        while True:
            try:
                yield await asyncio.wait_for(self._out.get(), HEARTBEAT)
            except TimeoutError:
                yield labeling_pb2.WorkerMessage(heartbeat=labeling_pb2.Heartbeat())

    async def run(self, item_of: dict[str, str]) -> None:
        call = self._stub.Work(self._requests(), metadata=[("authorization", f"Bearer {self._token}")])
        async for message in call:
            if message.WhichOneof("kind") != "assignments":
                continue
            for a in message.assignments.items:
                answer = self._answers.get(item_of.get(a.task_id, ""))
                if answer is None:
                    skip = labeling_pb2.Skip(task_id=a.task_id, reason="unseen")
                    out = labeling_pb2.WorkerMessage(skip=skip)
                else:
                    self.labels += 1
                    label = labeling_pb2.Label(task_id=a.task_id, option=answer)
                    out = labeling_pb2.WorkerMessage(labels=labeling_pb2.Labels(items=[label]))
                self._out.put_nowait(out)


async def register_workers(grpc_addr: str, names: list[str]) -> list[str]:
    async with grpc.aio.insecure_channel(grpc_addr) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        auth = [("authorization", f"Bearer {OPERATOR}")]

        async def one(n: int, name: str) -> str:
            address = p2pkh_address(n.to_bytes(20, "big"))
            reply = await stub.RegisterWorker(
                labeling_pb2.RegisterWorkerRequest(name=name[:100], payout_address=address), metadata=auth
            )
            return str(reply.token)

        return list(await asyncio.gather(*(one(n + 1, name) for n, name in enumerate(names))))


def submit(http: httpx.Client, tasks: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The task ids in order, and the batch ids."""
    task_ids: list[str] = []
    batches: list[str] = []
    for start in range(0, len(tasks), BATCH):
        reply = http.post("/v1/tasks/batch", json={"tasks": tasks[start : start + BATCH]})
        reply.raise_for_status()
        task_ids += reply.json()["task_ids"]
        batches.append(reply.json()["batch_id"])
    return task_ids, batches


def wait_decided(http: httpx.Client, batches: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = [http.get(f"/v1/tasks/batch/{b}").json() for b in batches]
        if all(p["decided"] == p["total"] for p in progress):
            return
        time.sleep(POLL)
    raise TimeoutError(f"tasks not decided within {timeout:.0f} s")


async def run_stack(
    method: str,
    answers: Answers,
    truth: dict[str, str],
    seed: int,
    gold_share: float,
    timeout: float,
    refresh: float = 0.5,
) -> dict[str, float]:
    rng = random.Random(seed)
    options = sorted(set(truth.values()) | {lab for a in answers.values() for _, lab in a})
    items = sorted(answers)
    rng.shuffle(items)
    gold = set(items[: round(gold_share * len(items))])
    by_worker: dict[str, dict[str, str]] = {}
    for item, given in answers.items():
        for worker, label in given:
            by_worker.setdefault(worker, {}).setdefault(item, label)
    workers = sorted(by_worker)
    rng.shuffle(workers)  # who is asked first
    with tempfile.TemporaryDirectory(prefix="asg-quality-stack-") as tmp:
        env = {
            "ASG_RATE_LIMIT": "off",
            "ASG_OPERATOR_TOKEN": OPERATOR,
            "ASG_SANDBOX_LABEL_QUOTA": str(10 * len(items) * 12),
            "ASG_CONSENSUS_REFRESH_SECONDS": str(refresh),
            "ASG_WORKER_ROSTER_SECONDS": "0.5",
            "ASG_GOLD_SHARE": str(gold_share),
            "ASG_CUSTOMER_SHARE_CAP": "1",
            "ASG_LOG_LEVEL": "WARNING",
        }
        stack = Stack(free_addr(), free_addr(), Path(tmp) / "data", Path(tmp) / "logs", env=env)
        with stack:
            registered = httpx.post(
                f"{stack.base_url}/v1/customers", json={"name": "Quality", "email": "quality@example.com"}
            ).json()
            headers = {"Authorization": f"Bearer {registered['api_key']}"}
            with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as http:
                tasks = [
                    {
                        "type": "text_classification",
                        "data_url": f"https://example.com/items/{quote(item, safe='')}",
                        "label_spec": {"question": "Which label?", "options": options},
                        "consensus_method": method,
                        "consensus_threshold": 3 if method == "majority" else 2,
                        **({"gold_label": truth[item]} if item in gold else {}),
                    }
                    for item in items
                ]
                task_ids, batches = submit(http, tasks)
                item_of = dict(zip(task_ids, items, strict=True))
                tokens = await register_workers(stack.grpc_addr, workers)
                started = time.monotonic()
                async with grpc.aio.insecure_channel(stack.grpc_addr) as channel:
                    agents = [Agent(channel, t, by_worker[w]) for t, w in zip(tokens, workers, strict=True)]
                    runs = [asyncio.create_task(a.run(item_of)) for a in agents]
                    try:
                        await asyncio.to_thread(wait_decided, http, batches, timeout)
                    finally:
                        for r in runs:
                            r.cancel()
                        await asyncio.gather(*runs, return_exceptions=True)
                elapsed = time.monotonic() - started
                results = {t: http.get(f"/v1/tasks/{t}/result").json() for t in task_ids}
    scored = [t for t in task_ids if item_of[t] not in gold]
    decided = [t for t in scored if results[t].get("consensus_label") is not None]
    right = [t for t in decided if results[t]["consensus_label"] == truth[item_of[t]]]
    labels = sum(len(r.get("labels", ())) for r in results.values())
    return {
        "accuracy": len(right) / len(scored),
        "labels_per_item": labels / len(items),
        "ece": ece([(results[t]["confidence"], t in right) for t in decided]),
        "gave_up": 1 - len(decided) / len(scored),
        "seconds": elapsed,
        "labels_per_second": labels / elapsed,
    }


def mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in runs), 4) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--method", choices=(*METHODS, "all"), default="all")
    parser.add_argument("--gold", type=float, default=0.05)
    parser.add_argument("--items", type=int, default=0, help="the first N items by name (0: all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--refresh", type=float, default=0.5, help="ASG_CONSENSUS_REFRESH_SECONDS")
    args = parser.parse_args()
    answers, truth = subset(*load(args.data), args.items)
    methods = METHODS if args.method == "all" else (args.method,)
    out: dict[str, Any] = {
        "dataset": args.data.name, "items": len(answers), "seeds": args.seeds, "gold": args.gold,
        "machine": machine(), "methods": {},
    }  # fmt: skip
    for method in methods:
        stack_runs = []
        for seed in range(args.seeds):
            run = run_stack(method, answers, truth, seed, args.gold, args.timeout, args.refresh)
            stack_runs.append(asyncio.run(run))
            log(f"{args.data.name} {method} seed {seed}: {stack_runs[-1]}")
        domain_runs = [vars(replay(method, answers, truth, s, args.gold, None)) for s in range(args.seeds)]
        through, domain = mean(stack_runs), mean([{k: r[k] for k in FIGURES} for r in domain_runs])
        out["methods"][method] = {
            "stack": through,
            "domain": domain,
            "stack_minus_domain": {k: round(through[k] - domain[k], 4) for k in FIGURES},
        }
        log(f"{args.data.name} {method}: {out['methods'][method]}")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
