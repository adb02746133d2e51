"""Verified tasks made through the store's own API (submit, then labels recorded as the
dispatcher records them), for settler tests and bench/settle.py."""

from __future__ import annotations

import hashlib
import time

from asg_grpc.domain.customers import Registration
from asg_grpc.domain.tasks import TaskSpec
from asg_grpc.domain.workers import Worker, WorkerRegistration, p2pkh_address
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.task_records import LabelingBatch, Submission

OPTIONS = ("cat", "dog")


def make_workers(store: SQLiteStore, count: int, now: float) -> list[Worker]:
    """`count` workers, each with its own payout address."""
    workers = []
    for i in range(count):
        address = p2pkh_address(hashlib.sha256(f"bench-worker-{i}".encode()).digest()[:20])
        registration = WorkerRegistration(f"worker-{i}", address, ("image_classification",))
        workers.append(store.create_worker(registration, token_hash=f"{i:064x}", now=now))
    return workers


def make_customer(store: SQLiteStore, quota: int, now: float) -> str:
    email = f"{time.time_ns()}@settle.example"
    customer = store.create_customer(
        Registration("settle", email),
        tier="sandbox",
        label_quota=quota,
        key_hash=hashlib.sha256(email.encode()).hexdigest(),
        key_hint="sk_…",
        now=now,
    )
    return customer.customer_id


def verified_tasks(
    store: SQLiteStore, customer_id: str, workers: list[Worker], count: int, *, threshold: int = 3
) -> list[str]:
    """`count` tasks, each labeled by `threshold` workers taken round-robin from `workers`: all
    answer "cat" but the last, who answers "dog" (2 of 3 agree). Returns the task ids."""
    now = time.time()
    spec = TaskSpec(
        "image_classification", "https://cdn.example.com/x.jpg", "Animal?", OPTIONS, threshold, None, None
    )
    task_ids: list[str] = []
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        [submitted] = store.submit([Submission(customer_id, [spec] * n, batch_id=None)], now)
        assert not isinstance(submitted, Exception)
        task_ids += [s.task.task_id for s in submitted]
    after = 0
    position = 0
    while True:
        batch = store.open_tasks(after_seq=after, limit=1000)
        if not batch:
            return task_ids
        labels = []
        for task in batch:
            after = task.seq
            for k in range(threshold):
                worker = workers[position % len(workers)]
                position += 1
                option = "dog" if k == threshold - 1 else "cat"
                task.claim(worker.worker_id, now + 60, now)
                task.label(worker.worker_id, option)
                labels.append((task.task_id, worker.worker_id, option, now))
        store.record_labeling(LabelingBatch(now, labels, [], batch))
