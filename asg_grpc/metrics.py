"""The core's Prometheus metrics (docs/operations.md): counters bumped on the hot paths, the
rest read from the store or the dispatcher only when scraped, served on ASG_METRICS_ADDR;
`timed_store` times every Store call (the core wraps the store it opens, server.py).

Served by aiohttp on the core's own event loop, not prometheus_client's thread: the store is
only ever used from that loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, Protocol, cast

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from asg_grpc.store.areas import Dashboard, Settlement, Tasks
from asg_grpc.store.base import Store, store_methods

log = logging.getLogger("asg.metrics")

GRPC_CALLS = Counter(
    "asg_grpc_calls", "gRPC calls the core finished, by full method name and status code", ["method", "code"]
)
LABELS = Counter("asg_labels", "Labels accepted from workers (committed in the next flush)")
DECISIONS = Counter(
    "asg_decisions",
    "Consensus outcomes reached: verified (agreement) or no_consensus (workers exhausted)",
    ["outcome"],
)

PAYOUT_FAILURES = Counter(
    "asg_payout_failures",
    "Payout transactions the ledger did not take: rejected, or not confirmed and sent again",
    ["verdict"],
)
WEBHOOK_FAILURES = Counter(
    "asg_webhook_delivery_failures",
    "Webhook delivery attempts that did not deliver, by the state they left (pending, failed, abandoned)",
    ["state"],
)
# Shown at 0 from the start, so a rate() alert on them has a series before the first failure.
for _verdict in ("rejected", "retry"):
    PAYOUT_FAILURES.labels(_verdict)
for _state in ("pending", "failed", "abandoned"):
    WEBHOOK_FAILURES.labels(_state)

# A SQLite call takes tens of microseconds, an Aerospike one a network round trip: the buckets
# start well below prometheus_client's default 5 ms.
STORE_SECONDS = Histogram(
    "asg_store_seconds",
    "Store call durations, by Store method (raised errors included)",
    ["method"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

_VERIFIED, _NO_CONSENSUS = DECISIONS.labels("verified"), DECISIONS.labels("no_consensus")


def grpc_call(method: str, code: str) -> None:
    GRPC_CALLS.labels(method, code).inc()


def labels_counted(labels: int, verified: int, no_consensus: int) -> None:
    """Labels accepted and the decisions they led to, counted once per commit (the dispatcher's
    flush), not once per label: each `inc` takes a lock, and labels arrive by the thousand."""
    if labels:
        LABELS.inc(labels)
    if verified:
        _VERIFIED.inc(verified)
    if no_consensus:
        _NO_CONSENSUS.inc(no_consensus)


def _timed(call: Callable[..., Any], method: str) -> Callable[..., Any]:
    """`call`, observed in asg_store_seconds{method}; the series appears with the first call,
    so the methods a core never calls add nothing to a scrape."""
    seconds: Histogram | None = None

    @wraps(call)
    def timed(*args: Any, **kwargs: Any) -> Any:
        nonlocal seconds
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            if seconds is None:
                seconds = STORE_SECONDS.labels(method)
            seconds.observe(time.perf_counter() - start)

    return timed


class _TimedStore:
    """The Store methods of `store`, each observed in asg_store_seconds{method}; anything else
    (a backend's own attributes) passes through untimed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        for name in store_methods():
            setattr(self, name, _timed(getattr(store, name), name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def timed_store(store: Store) -> Store:
    """`store` with every call's duration in asg_store_seconds: wrapped where the core opens
    it, so the backends stay free of metrics and every caller is timed alike."""
    return cast(Store, _TimedStore(store))


class ScrapedStore(Dashboard, Settlement, Tasks, Protocol):
    """What a scrape reads: tasks by status, and the oldest task waiting to be paid."""


class CoreCollector(Collector):
    """Read at scrape time: tasks by status (the store's dashboard counters), the age of the
    settlement queue, and the workers connected to this core's dispatcher."""

    def __init__(
        self,
        store: ScrapedStore,
        connected: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._connected = connected
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily("asg_tasks", "Tasks by status, all customers", labels=["status"])
        age = GaugeMetricFamily(
            "asg_settlement_queue_age_seconds",
            "Seconds the next task to pay has waited for its payout since it was decided (0: none waits)",
        )
        try:
            for status, n in sorted(self._store.status_totals().items()):
                tasks.add_metric([status], n)
            age.add_metric([], self._queue_age())
        except Exception:  # a scrape must answer even when the store is down; the gap shows it
            log.warning("metrics: cannot read the store", exc_info=True)
        yield tasks
        yield age
        if self._connected is not None:
            yield GaugeMetricFamily(
                "asg_connected_workers", "Work streams open to this core", value=self._connected()
            )

    def _queue_age(self) -> float:
        """The head of the settlement queue (the task the next payout takes first: verified,
        or cancelled/expired with labels, in no payout yet), from the settler's own read."""
        head = self._store.settleable_tasks(1)
        if not head:
            return 0.0
        task = self._store.get_task(head[0].customer_id, head[0].task_id)
        if task is None:
            return 0.0
        since = task.verdict.decided_at if task.verdict is not None else task.updated_at
        return max(0.0, self._clock() - since)


class MetricsServer:
    """GET /metrics on `addr` (HOST:PORT) with `collector` registered, from start to stop."""

    def __init__(self, addr: str, collector: CoreCollector, registry: CollectorRegistry = REGISTRY) -> None:
        self.addr = addr
        self._collector = collector
        self._registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        registry = self._registry

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        registry.register(self._collector)
        host, _, port = self.addr.rpartition(":")
        try:
            await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            self._registry.unregister(self._collector)
