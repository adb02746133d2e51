"""The webhook worker: fans the outbox out into deliveries and delivers them.

Three loops on the core's event loop, each logging and surviving any exception:

* fan-out: pending outbox events → deliveries (fanout.py), one store transaction per page;
* delivery: due deliveries → concurrent HTTPS POSTs, at most `webhook_concurrency` at once;
* recorder: the outcomes of finished attempts → the store, many per transaction.

Store calls are short and synchronous; only the HTTP waits are long, and they are awaited, so
a slow or dead receiver holds one delivery slot, never the event loop (task processing runs on
the same loop). A delivery stays excluded from polling from the moment it is attempted until its
outcome is written, so it is never attempted twice at once; a crash in between means it is sent
again after restart (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

import aiohttp

from asg_grpc import metrics
from asg_grpc.background import stop_tasks, wait_event
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.webhooks import next_attempt_delay, signature_header
from asg_grpc.sealing import SealBroken, Sealer, open_webhook_secret
from asg_grpc.settings import Settings
from asg_grpc.store.offload import offload_of
from asg_grpc.store.webhook_records import AttemptResult, DueDelivery
from asg_grpc.webhooks.fanout import FanOutStore, fan_out_once
from asg_grpc.wire.urls import UrlGuard

log = logging.getLogger("asg.webhooks")

USER_AGENT = "asg-refinery-webhooks/1"
POLL_INTERVAL = 0.05  # seconds between store polls when there is nothing to do
ERROR_BACKOFF = 1.0  # seconds a loop waits after an unexpected exception
FAN_OUT_PAGE = 100  # events per store call: short enough not to stall the event loop
RECORD_DELAY = 0.005  # seconds the recorder waits so one transaction takes a burst of outcomes
MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of a receiver's answer
MAX_ERROR_CHARS = 500


class WebhookWorker:
    """Run by the core that dispatches (one per store): `start()` once, `stop()` once."""

    def __init__(
        self, store: FanOutStore, settings: Settings, sealer: Sealer, *, poll_interval: float = POLL_INTERVAL
    ) -> None:
        self._store = store
        # The fan-out page and the due-deliveries poll hop to the store's threads on Aerospike
        # (inline on SQLite): the loop serves gRPC while the node answers.
        self._offload = offload_of(store)
        self._sealer = sealer
        self._urls = UrlGuard(settings.allow_private_urls, dev_mode=settings.dev_mode)
        self._concurrency = settings.webhook_concurrency
        self._timeout = settings.webhook_timeout
        self._retry_scale = settings.webhook_retry_scale
        self._poll = poll_interval
        self._client: aiohttp.ClientSession | None = None
        # delivery id → its attempt; kept until the outcome is written to the store
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._outcomes: list[AttemptResult] = []
        self._have_outcomes = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # aiohttp rather than httpx here: its pool and C parser keep up with thousands of
        # deliveries a second (httpx managed a few hundred; docs/benchmarks.md).
        self._client = aiohttp.ClientSession(
            connector=self._urls.connector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        )
        loop = asyncio.get_running_loop()
        for name, coro in (
            ("fan-out", self._fan_out_loop()),
            ("delivery", self._delivery_loop()),
            ("recorder", self._recorder_loop()),
        ):
            self._loops.append(loop.create_task(coro, name=f"webhooks-{name}"))

    async def stop(self) -> None:
        """Stop polling, abandon attempts still waiting for an answer (they stay pending and
        go out again after restart), write the outcomes already known."""
        await stop_tasks(*self._loops, *self._in_flight.values())
        try:
            self._write_outcomes()
        except Exception:
            log.exception("webhook outcomes not written at stop; those deliveries will be retried")
        finally:
            if self._client is not None:
                await self._client.close()

    # fan-out ---------------------------------------------------------------------------------

    async def _fan_out_loop(self) -> None:
        while True:
            try:
                handled = await self._offload(partial(fan_out_once, self._store, FAN_OUT_PAGE))
            except Exception:
                log.exception("webhook fan-out failed; retrying")
                await asyncio.sleep(ERROR_BACKOFF)
                continue
            if handled < FAN_OUT_PAGE:
                await asyncio.sleep(self._poll)
            else:
                await asyncio.sleep(0)

    # delivery --------------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            full_page = False
            try:
                room = self._concurrency - len(self._in_flight)
                if room > 0:
                    due = await self._offload(
                        partial(self._store.due_deliveries, time.time(), room, exclude=set(self._in_flight))
                    )
                    for delivery in due:
                        self._in_flight[delivery.delivery_id] = loop.create_task(self._attempt(delivery))
                    full_page = len(due) == room
            except Exception:
                log.exception("polling due webhook deliveries failed; retrying")
                await asyncio.sleep(ERROR_BACKOFF)
                continue
            if full_page:
                # Busy: the next poll is worth it as soon as a slot frees up.
                self._slot_free.clear()
                await wait_event(self._slot_free, self._poll)
            else:
                await asyncio.sleep(self._poll)

    async def _attempt(self, delivery: DueDelivery) -> None:
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                await self._urls.check(delivery.callback_url, "callback_url")
                status = await self._post(delivery)
        except ValidationError as exc:
            error = exc.message
        except SealBroken as exc:  # sealed under another key: no attempt can sign it
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self._timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        except Exception as exc:  # a bug must not lose the delivery: it counts as a failed attempt
            log.exception("webhook attempt failed unexpectedly", extra={"delivery_id": delivery.delivery_id})
            error = f"internal error: {type(exc).__name__}"
        self._outcomes.append(outcome(delivery, status, error, time.time(), self._retry_scale))
        self._have_outcomes.set()

    async def _post(self, delivery: DueDelivery) -> int:
        assert self._client is not None
        secret = open_webhook_secret(self._sealer, delivery.webhook_id, delivery.sealed_secret)
        headers = {
            "Content-Type": "application/json",
            "ASG-Signature": signature_header(secret, delivery.payload, int(time.time())),
            "ASG-Event": delivery.event_type,
            "ASG-Delivery": delivery.delivery_id,
        }
        async with self._client.post(
            delivery.callback_url, data=delivery.payload, headers=headers, allow_redirects=False
        ) as response:
            # Read a short answer so the connection can be reused; never hold a long one.
            await response.content.read(MAX_RESPONSE_BYTES)
            return response.status

    # recording outcomes ----------------------------------------------------------------------

    async def _recorder_loop(self) -> None:
        while True:
            await self._have_outcomes.wait()
            await asyncio.sleep(RECORD_DELAY)
            self._have_outcomes.clear()
            try:
                self._write_outcomes()
            except Exception:
                log.exception("recording webhook outcomes failed; retrying")
                self._have_outcomes.set()
                await asyncio.sleep(ERROR_BACKOFF)

    def _write_outcomes(self) -> None:
        if not self._outcomes:
            return
        batch = self._outcomes
        self._outcomes = []
        try:
            self._store.record_attempts(batch, time.time())
        except BaseException:
            self._outcomes = batch + self._outcomes
            raise
        for result in batch:
            self._in_flight.pop(result.delivery_id, None)
        self._slot_free.set()
        for result in batch:
            if result.state != "delivered":
                metrics.WEBHOOK_FAILURES.labels(result.state).inc()
                log.info(
                    "webhook delivery not delivered",
                    extra={
                        "delivery_id": result.delivery_id,
                        "webhook_id": result.webhook_id,
                        "state": result.state,
                        "status": result.status,
                        "error": result.error,
                    },
                )


def outcome(
    delivery: DueDelivery, status: int | None, error: str | None, now: float, retry_scale: float = 1.0
) -> AttemptResult:
    """What one attempt means: 2xx delivered; 410 Gone abandons it and deactivates the webhook;
    anything else (other codes, redirects, timeouts, refused URLs) is retried per the schedule
    (scaled by `retry_scale`) and fails for good once the schedule is used up."""
    if status is not None and 200 <= status < 300:
        return AttemptResult(delivery.delivery_id, delivery.webhook_id, status, None, "delivered", None)
    if status == 410:
        return AttemptResult(
            delivery.delivery_id,
            delivery.webhook_id,
            status,
            "410 Gone",
            "abandoned",
            None,
            deactivate_webhook=True,
        )
    if error is None:
        error = f"HTTP {status}"
    delay = next_attempt_delay(delivery.attempts + 1)
    if delay is None:
        return AttemptResult(delivery.delivery_id, delivery.webhook_id, status, error, "failed", None)
    return AttemptResult(
        delivery.delivery_id, delivery.webhook_id, status, error, "pending", now + delay * retry_scale
    )
