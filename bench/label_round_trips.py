"""Round trips to Aerospike per labeling flush, counted at the client (issue 12 §4).

Drives `record_labeling` on an Aerospike store directly, the way the dispatcher's flushes do
for tasks of threshold 3 where every worker agrees: one flush claims `--tasks` tasks (pending →
in progress), then three flushes each add one label per task, the third deciding them
(verified). Every call the store makes on the aerospike client is counted by name (a batch
call counts once, with its records counted apart), and each flush is timed.

Prints one JSON object on stdout:

    .venv/bin/python bench/label_round_trips.py [--tasks 200]
        [--store "aerospike://127.0.0.1:3000/asg?set_prefix=bench_rt_"]

The set prefix's sets are truncated first, so give one that nothing else uses.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from asg_grpc.domain import consensus
from asg_grpc.domain.customers import Registration
from asg_grpc.domain.tasks import TaskSpec, TaskStatus
from asg_grpc.store.aerospike import store as aerospike_store
from asg_grpc.store.aerospike.connection import connect, parse_url
from asg_grpc.store.task_records import LabelingBatch, Submission

BATCH_CALLS = frozenset({"batch_write", "batch_operate", "batch_read", "batch_get_ops", "batch_remove"})
SPEC = TaskSpec(
    task_type="image_classification",
    data_url="https://cdn.example.com/0.jpg",
    question="Cat?",
    options=("yes", "no"),
    consensus_threshold=3,
    callback_url=None,
    idempotency_key=None,
)


class CountingClient:
    """The real client, every call counted by method name (batch calls' records apart)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()
        self.batch_records = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("query", "scan"):
            return attr
        calls = self

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.calls[name] += 1
            answer = attr(*args, **kwargs)
            if name in BATCH_CALLS:
                calls.batch_records += len(getattr(answer, "batch_records", None) or args[0] or [])
            return answer

        return counted

    def take(self) -> tuple[dict[str, int], int]:
        out, records = dict(self.calls), self.batch_records
        self.calls.clear()
        self.batch_records = 0
        return out, records


def truncate(url: str) -> None:
    parsed = parse_url(url)
    client = connect(parsed)
    try:
        info = str(client.info_random_node(f"sets/{parsed.namespace}"))
        for item in info.split(";"):
            fields = dict(f.partition("=")[::2] for f in item.split(":") if "=" in f)
            name = fields.get("set", "")
            if parsed.set_prefix and name.startswith(parsed.set_prefix):
                client.truncate(parsed.namespace, name, 0)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--store", default="aerospike://127.0.0.1:3000/asg?set_prefix=bench_rt_")
    args = parser.parse_args()
    truncate(args.store)
    counting: list[CountingClient] = []

    def connect_counted(url: Any, **kwargs: Any) -> Any:
        counting.append(CountingClient(connect(url, **kwargs)))
        return counting[0]

    aerospike_store.connect = connect_counted  # type: ignore[assignment]
    store = aerospike_store.AerospikeStore(parse_url(args.store))
    client = counting[0]
    now = time.time()
    customer = store.create_customer(
        Registration("Ada", "ada@example.com"),
        tier="sandbox",
        label_quota=10 * args.tasks,
        key_hash="k",
        key_hint="h",
        now=now,
    )
    specs = [replace(SPEC, data_url=f"https://cdn.example.com/{n}.jpg") for n in range(args.tasks)]
    store.submit([Submission(customer.customer_id, specs, None)], now)
    tasks = store.open_tasks(after_seq=0, limit=args.tasks)
    client.take()
    flushes = []
    for step in range(4):  # claim, label 1, label 2, label 3 (decides)
        now = time.time()
        batch = LabelingBatch(now=now, labels=[], skips=[], tasks=[])
        for task in tasks:
            if step == 0:
                task.status = TaskStatus.IN_PROGRESS
                batch.tasks.append(task)
                continue
            worker = f"wkr_{step}"
            task.labels[worker] = "yes"
            batch.labels.append((task.task_id, worker, "yes", now))
            if step == 3:
                task.status = TaskStatus.VERIFIED
                task.outcome = consensus.Decided("yes", 3, 3)
                batch.tasks.append(task)
        started = time.perf_counter()
        closed = store.record_labeling(batch)
        seconds = time.perf_counter() - started
        calls, records = client.take()
        flushes.append(
            {
                "flush": ["claim", "label 1", "label 2", "label 3 (decides)"][step],
                "tasks_changed": len(batch.tasks),
                "labels": len(batch.labels),
                "closed": len(closed),
                "round_trips": sum(calls.values()),
                "round_trips_per_task": round(sum(calls.values()) / args.tasks, 2),
                "batch_records": records,
                "calls": dict(sorted(calls.items())),
                "seconds": round(seconds, 4),
                "ms_per_task": round(1000 * seconds / args.tasks, 3),
            }
        )
    counters = store.status_totals().get("verified", 0)
    store.close()
    total = sum(f["round_trips"] for f in flushes)  # type: ignore[misc]
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "verified_counted": counters,
                "round_trips_per_task": round(total / args.tasks, 2),
                "round_trips_per_label": round(total / (3 * args.tasks), 2),
                "seconds_per_task_ms": round(
                    1000 * sum(f["seconds"] for f in flushes) / args.tasks,  # type: ignore[misc]
                    3,
                ),
                "flushes": flushes,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
