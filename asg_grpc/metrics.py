"""The core's Prometheus metrics (docs/operations.md): counters bumped on the hot paths, the
rest read from the store or the dispatcher only when scraped, served on ASG_METRICS_ADDR.

Served by aiohttp on the core's own event loop, not prometheus_client's thread: the store is
only ever used from that loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from asg_grpc.store.base import Store

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


class CoreCollector(Collector):
    """Read at scrape time: tasks by status (the store's dashboard counters) and the workers
    connected to this core's dispatcher."""

    def __init__(self, store: Store, connected: Callable[[], int] | None = None) -> None:
        self._store = store
        self._connected = connected

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily("asg_tasks", "Tasks by status, all customers", labels=["status"])
        try:
            for status, n in sorted(self._store.status_totals().items()):
                tasks.add_metric([status], n)
        except Exception:  # a scrape must answer even when the store is down; the gap shows it
            log.warning("metrics: cannot read task counts", exc_info=True)
        yield tasks
        if self._connected is not None:
            yield GaugeMetricFamily(
                "asg_connected_workers", "Work streams open to this core", value=self._connected()
            )


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
