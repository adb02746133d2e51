"""Customers under load: threads submitting over REST (single tasks, small batches, a few
cancels and deadlines, result reads), each request retried with its idempotency key while the
service is unavailable, as the SDK does. Every answer is tallied per round; every task the
service acknowledged (202, or 200 for a replay) is remembered with its data_url, so the
campaign can find it in the store afterwards."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_FOR = 60.0  # seconds a request is retried while the service is unavailable
UNAVAILABLE = (503, 504)  # "core unavailable" (504: the gateway's answer today while the core stalls)


@dataclass
class Tally:
    requests: int = 0
    acked: int = 0  # tasks acknowledged
    unavailable: int = 0  # 503/504
    refused: int = 0  # no HTTP answer: the gateway was down, stopped or too slow
    errors: int = 0  # any other 5xx, or a 4xx no correct request gets: violations
    no_retry_after: int = 0  # 503s without a Retry-After header
    samples: list[str] = field(default_factory=list)  # the first few violations, to show


class Seen:
    """What the customers saw, shared by their threads; `round` is the campaign's current one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rounds: dict[int, Tally] = {}
        self.acked: dict[str, str] = {}  # data_url → task_id
        self.conflicts: list[str] = []  # one data_url acknowledged as two tasks
        self.round = 0

    def count(self, round_no: int, what: str, sample: str | None = None) -> None:
        with self.lock:
            tally = self.rounds.setdefault(round_no, Tally())
            setattr(tally, what, getattr(tally, what) + 1)
            if sample is not None and len(tally.samples) < 5:
                tally.samples.append(sample)

    def ack(self, round_no: int, data_url: str, task_id: str) -> None:
        self.count(round_no, "acked")
        with self.lock:
            first = self.acked.setdefault(data_url, task_id)
            if first != task_id:
                self.conflicts.append(f"{data_url}: {first} and {task_id}")


class Customer(threading.Thread):
    def __init__(
        self, base_url: str, api_key: str, name: str, seen: Seen, seed: int, callback_url: str | None = None
    ) -> None:
        super().__init__(name=f"customer-{name}", daemon=True)
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=5.0
        )
        self.name_ = name
        self.seen = seen
        self.rng = random.Random(seed)
        self.callback_url = callback_url
        self.running = threading.Event()
        self.stopping = threading.Event()
        self.sequence = 0
        self.mine: list[str] = []  # task ids acknowledged to this customer

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.running.wait(0.05):
                continue
            roll = self.rng.random()
            if roll < 0.70:
                self.submit_one()
            elif roll < 0.82:
                self.submit_batch(4)
            elif roll < 0.85 and self.mine:
                self.call("DELETE", f"/v1/tasks/{self.rng.choice(self.mine)}", ok=(200, 409))
            elif self.mine:
                self.call("GET", f"/v1/tasks/{self.rng.choice(self.mine)}/result", ok=(200, 202))
            time.sleep(self.rng.uniform(0.01, 0.06))
        self.http.close()

    def task(self) -> dict[str, Any]:
        self.sequence += 1
        n = self.sequence
        body: dict[str, Any] = {
            "type": "image_classification",
            "data_url": f"https://cdn.example.com/chaos/{self.seen.round}/{self.name_}/{n}.jpg",
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            "consensus_threshold": 3,
            "idempotency_key": f"{self.name_}-{n}",
        }
        if self.callback_url:
            body["callback_url"] = self.callback_url
        if self.rng.random() < 0.05:
            body["expires_in_seconds"] = 1  # some end `expired`, maybe with labels to pay
        return body

    def submit_one(self) -> None:
        round_no, body = self.seen.round, self.task()
        reply = self.call("POST", "/v1/tasks", json=body, ok=(200, 202))
        if reply is not None:
            self.acked(round_no, body["data_url"], reply.json()["task_id"])

    def submit_batch(self, size: int) -> None:
        round_no, tasks = self.seen.round, [self.task() for _ in range(size)]
        reply = self.call("POST", "/v1/tasks/batch", json={"tasks": tasks}, ok=(202,))
        if reply is not None:
            for body, task_id in zip(tasks, reply.json()["task_ids"], strict=True):
                self.acked(round_no, body["data_url"], task_id)

    def acked(self, round_no: int, data_url: str, task_id: str) -> None:
        self.seen.ack(round_no, data_url, task_id)
        self.mine.append(task_id)

    def call(self, method: str, path: str, ok: tuple[int, ...], **kw: Any) -> httpx.Response | None:
        """The request, retried while unavailable; the answer if it was one of `ok`."""
        round_no = self.seen.round
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.seen.count(round_no, "requests")
            try:
                reply = self.http.request(method, path, **kw)
            except httpx.HTTPError:
                self.seen.count(round_no, "refused")
                time.sleep(0.2)
                continue
            if reply.status_code in ok:
                return reply
            if reply.status_code in UNAVAILABLE:
                self.seen.count(round_no, "unavailable")
                if reply.status_code == 503 and "retry-after" not in reply.headers:
                    self.seen.count(round_no, "no_retry_after")
                time.sleep(0.2)
                continue
            self.seen.count(round_no, "errors", f"{method} {path} → {reply.status_code} {reply.text[:120]}")
            if reply.status_code < 500:
                return None  # a 4xx will not change on retry
            time.sleep(0.2)  # a 5xx: the request may or may not have been stored; retry
        return None
