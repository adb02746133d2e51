"""The core process (`asg-server`): composes store and services, serves gRPC until signalled."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from functools import partial

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from asg_common import logs
from asg_grpc.dispatch.dispatcher import Dispatcher, DispatchSettings
from asg_grpc.dispatch.lease import DispatchLease, DispatchTaken
from asg_grpc.dispatch.traffic import TrafficSettings
from asg_grpc.domain.settlement import WorkerPayment
from asg_grpc.jobs.runner import JobRunner
from asg_grpc.metrics import CoreCollector, MetricsServer, timed_store
from asg_grpc.operator import operator_token
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.services.billing import BillingService
from asg_grpc.services.callers import Callers
from asg_grpc.services.chain import ChainService
from asg_grpc.services.dashboard import DashboardService
from asg_grpc.services.errors import ErrorInterceptor
from asg_grpc.services.jobs import JobService
from asg_grpc.services.labeling import LabelingService
from asg_grpc.services.ratelimit import KeyLimits
from asg_grpc.services.tasks import TaskService
from asg_grpc.services.webhooks import WebhookService
from asg_grpc.settings import Settings, SettingsError
from asg_grpc.settlement.runtime import Settlement
from asg_grpc.store.open import missing_areas, open_store
from asg_grpc.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    chain_pb2,
    chain_pb2_grpc,
    dashboard_pb2,
    dashboard_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    labeling_pb2,
    labeling_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from asg_grpc.webhooks.worker import WebhookWorker

log = logging.getLogger("asg.server")

# A batch of 1000 tasks at the documented limits is well under this.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SHUTDOWN_GRACE_SECONDS = 5.0
EXIT_SETTINGS = 2  # a setting that cannot be used, like argparse's exit code for a bad flag
CORE_SERVICES = (
    tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
    billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
    webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    chain_pb2.DESCRIPTOR.services_by_name["ChainService"].full_name,
    dashboard_pb2.DESCRIPTOR.services_by_name["DashboardService"].full_name,
)
LABELING_SERVICE = labeling_pb2.DESCRIPTOR.services_by_name["LabelingService"].full_name


class Core:
    """The running core: its store, gRPC server and health status, started and stopped once.

    With `settings.dispatch` (the default) it also dispatches work to labelers and serves
    LabelingService; only one core process per store may (docs/labeling.md).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.store = open_store(settings.store_url, settings.store_options)
        except ValueError as exc:  # a namespace that cannot hold this store, say
            raise SettingsError(f"ASG_STORE={settings.store_url}: {exc}") from None
        missing = missing_areas(self.store)
        if missing:
            self.store.close()
            raise SettingsError(
                f"ASG_STORE={settings.store_url} cannot serve the core yet: its backend lacks"
                f" {', '.join(missing)} (docs/storage-aerospike.md, Not on Aerospike yet)"
            )
        # Every caller's store calls timed in asg_store_seconds (docs/operations.md).
        self.store = timed_store(self.store)
        # Set when the core can no longer run as configured (the dispatch lease was lost).
        self.failed = asyncio.Event()
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[ErrorInterceptor()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.dispatcher: Dispatcher | None = None
        self.lease: DispatchLease | None = None
        # Webhook delivery runs where dispatch does: one process per store (docs/webhooks.md).
        self.webhooks: WebhookWorker | None = None
        # So does the job runner (reading manifests, completing jobs).
        self.jobs: JobRunner | None = None
        # And settlement (paying agreeing workers; the local ledger's miner).
        self.settlement: Settlement | None = None
        sealer = Sealer.for_settings(settings)
        self.store.seal_webhook_secrets(partial(seal_webhook_secret, sealer))
        # Who is calling, for every service; one rate limit per key across them (docs/billing.md).
        callers = Callers(
            self.store, KeyLimits(settings.tiers, enabled=settings.rate_limit), operator_token(settings)
        )
        self.services: tuple[str, ...] = CORE_SERVICES
        if settings.dispatch:
            self.dispatcher = Dispatcher(
                self.store,
                DispatchSettings(
                    lease_seconds=settings.lease_seconds,
                    max_in_flight=settings.max_in_flight,
                    window=settings.dispatch_window,
                    idle_timeout=settings.worker_idle_timeout,
                    refresh_interval=settings.consensus_refresh_seconds,
                    roster_interval=settings.worker_roster_seconds,
                    traffic=TrafficSettings(
                        gold_share=settings.gold_share,
                        customer_share_cap=settings.customer_share_cap,
                        customer_share_min_labels=settings.customer_share_min_labels,
                    ),
                ),
            )
            self.lease = DispatchLease(self.store)
            self.webhooks = WebhookWorker(self.store, settings, sealer)
            self.jobs = JobRunner(self.store, settings, sealer, self.dispatcher.wake)
            self.settlement = Settlement(self.store, settings, on_paid=self._tell_workers)
            labeling_pb2_grpc.add_LabelingServiceServicer_to_server(
                LabelingService(self.store, self.dispatcher, callers, settings), self.server
            )
            self.services = (*CORE_SERVICES, LABELING_SERVICE)
        tasks_pb2_grpc.add_TaskServiceServicer_to_server(
            TaskService(
                self.store,
                callers,
                on_submitted=self.dispatcher.wake if self.dispatcher else None,
                on_closed=self.dispatcher.withdraw if self.dispatcher else None,
                default_method=settings.consensus_method,
                dev_mode=settings.dev_mode,
            ),
            self.server,
        )
        billing_pb2_grpc.add_BillingServiceServicer_to_server(
            BillingService(self.store, settings, callers), self.server
        )
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookService(self.store, settings, sealer, callers), self.server
        )
        jobs_pb2_grpc.add_JobServiceServicer_to_server(
            JobService(
                self.store, settings, sealer, callers, on_created=self.jobs.wake if self.jobs else None
            ),
            self.server,
        )
        # Chain reads need only the store, so every core serves them, dispatching or not.
        chain_pb2_grpc.add_ChainServiceServicer_to_server(
            ChainService(self.store, callers, network=settings.ledger.network), self.server
        )
        dashboard_pb2_grpc.add_DashboardServiceServicer_to_server(
            DashboardService(self.store, settings, callers), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        try:
            self.port = self.server.add_insecure_port(settings.grpc_addr)
        except RuntimeError:  # grpc's "Failed to bind": taken, or not an address of this machine
            self.port = 0
        if not self.port:
            self.store.close()
            raise SettingsError(
                f"ASG_GRPC_ADDR / --grpc {settings.grpc_addr}: cannot listen there"
                " (in use, or not this machine's)"
            )
        self._background: list[asyncio.Task[None]] = []
        dispatcher = self.dispatcher
        self.metrics = (
            MetricsServer(
                settings.metrics_addr,
                CoreCollector(self.store, (lambda: dispatcher.streams) if dispatcher else None),
            )
            if settings.metrics_addr
            else None
        )

    def _tell_workers(self, paid: list[WorkerPayment]) -> None:
        """A payout was accepted: each connected worker it paid hears of it (best effort)."""
        if self.dispatcher is not None:
            self.dispatcher.notify_payments(paid)

    async def start(self) -> None:
        """Raises DispatchTaken when another live core dispatches for this store, SettingsError
        when the metrics address cannot be listened on (before anything else has started)."""
        if self.metrics is not None:
            try:
                await self.metrics.start()
            except OSError as exc:
                raise SettingsError(
                    f"ASG_METRICS_ADDR={self.settings.metrics_addr}: cannot listen there"
                    f" ({os.strerror(exc.errno) if exc.errno else exc})"
                ) from None
        if self.dispatcher is not None and self.lease is not None:
            self.lease.acquire()
            await self.dispatcher.start()
            if self.webhooks is not None:
                await self.webhooks.start()
            if self.jobs is not None:
                await self.jobs.start()
            if self.settlement is not None:
                await self.settlement.start()
            self._background.append(asyncio.get_running_loop().create_task(self.lease.keep(self.failed.set)))
        await self.server.start()
        for name in ("", *self.services):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "core serving",
            extra={
                "grpc": self.settings.grpc_addr,
                "port": self.port,
                "store": self.settings.store_url,
                "dispatch": self.dispatcher is not None,
                "metrics": self.settings.metrics_addr or None,
            },
        )

    async def abandon(self) -> None:
        """After a failed start: what start() opened before it failed, closed, and the store."""
        if self.metrics is not None:
            await self.metrics.stop()
        await self.server.stop(None)
        self.store.close()

    async def stop(self) -> None:
        """Refuse new calls, let running ones finish for a grace period, then close the store."""
        await self.health.enter_graceful_shutdown()
        if self.metrics is not None:
            await self.metrics.stop()
        for task in self._background:
            task.cancel()
        try:
            if self.settlement is not None:
                await self.settlement.stop()
            if self.jobs is not None:
                await self.jobs.stop()
            if self.webhooks is not None:
                await self.webhooks.stop()
            if self.dispatcher is not None:
                # Labels received so far are committed and acked, then the Work streams end,
                # so the grace period below is for unary calls in flight.
                await self.dispatcher.stop(flush=not self.failed.is_set())
        finally:
            try:
                await self.server.stop(SHUTDOWN_GRACE_SECONDS)
            finally:
                try:
                    if self.lease is not None and not self.failed.is_set():
                        self.lease.release()
                finally:
                    self.store.close()
        log.info("core stopped")


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until the core fails (exit 1)."""
    # Handlers first: a supervisor may signal as soon as it reads "core serving", and that
    # signal must stop the core gracefully, not kill it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    core = Core(settings)
    try:
        await core.start()
    except DispatchTaken as exc:
        log.error(str(exc))
        await core.abandon()
        return 1
    except SettingsError:
        await core.abandon()
        raise
    waiters = [loop.create_task(stop.wait()), loop.create_task(core.failed.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    await core.stop()
    return 1 if core.failed.is_set() else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asg-server", description="Run the ASG Refinery core.")
    p.add_argument("--grpc", metavar="HOST:PORT", help="listen address (ASG_GRPC_ADDR, 127.0.0.1:50051)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the SQLite file lives (ASG_DATA_DIR, else as `asg dev` recorded, else ./var)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Settings are read here, once; one that cannot be used exits 2 with its name, no traceback."""
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_flags(args.data_dir, args.grpc)
        logs.configure(settings.log_level)
        log.info("core settings", extra={"settings": settings.banner()})
        # Settings that only the files they name can refute (ASG_SEALING_KEY, ASG_WALLET_WIF)
        # are refused while the core is assembled, before it serves.
        code = uvloop.run(serve(settings))
    except SettingsError as exc:
        print(f"asg-server: {exc}", file=sys.stderr)
        code = EXIT_SETTINGS
    sys.exit(code)


if __name__ == "__main__":
    main()
