"""The gateway as one worker of the ASG marketplace (docs/challenge.md, "Part of the marketplace").

It opens the real `LabelingService.Work` stream with its own worker token, through the worker
agent's client (`worker_agent.Agent`: hello, heartbeats, acks, reconnects with capped, jittered
back-off). `MarketLabeler` is its labeler: each assignment becomes an unknown item of the
gateway-managed dataset `marketplace: <task type>`; the call returns once the item's passed
sessions agree (the gateway's own consensus rule), as a Label carrying votes and agreement.

What the gateway owes the core is in its store, not in memory: an item labeled while the core
is away stays `open` with its label until the core assigns the task again (it re-offers the
slots of a dead stream) and acks the label; a restart of either side loses nothing. Disputed
items, and items without consensus after `hold` seconds, go back with a Skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asg_challenge.dashboard import endpoint
from asg_challenge.errors import InvalidField
from asg_challenge.gateway import Gateway
from asg_challenge.items import parse_item
from asg_challenge.settings import MarketSettings
from asg_grpc.v1 import labeling_pb2
from worker_agent.agent import Agent
from worker_agent.errors import AuthError
from worker_agent.labelers.base import Answer, Decision, Skip
from worker_agent.settings import WorkerSettings

log = logging.getLogger("asg_challenge.marketplace")
AGENT = "asg-challenge"
POLL = 0.25  # seconds between looks at a held task's item for its consensus
TEXT_TYPES = ("text_classification", "sentiment", "moderation")


def dataset_for(task_type: str) -> tuple[str, str]:
    """The gateway-managed dataset (name, modality) a task type's items go to."""
    return f"marketplace: {task_type}", "text" if task_type in TEXT_TYPES else "image"


def item_for(assignment: labeling_pb2.Assignment) -> dict[str, Any]:
    """The unknown item shown for a task: its question, options and data URL (as text: the
    gateway does not fetch customer URLs). Raises InvalidField when an item cannot hold it."""
    spec = assignment.label_spec
    return parse_item(
        {
            "question": spec.question or "Which label fits?",
            "text": assignment.data_url,
            "options": list(spec.options),
        }
    )


class MarketLabeler:
    """Answers an assignment with the consensus of the sessions that labeled its item."""

    name = "challenge-gateway"
    # A drain never waits for people: held tasks go back when the stream ends (not skipped,
    # so the core offers them to the gateway again after a restart).
    can_finish_quickly = False

    def __init__(self, gw: Gateway, hold: float) -> None:
        self._gw = gw
        self._hold = hold

    async def label(self, assignment: labeling_pb2.Assignment) -> Decision:
        store = self._gw.store
        try:
            item = item_for(assignment)
        except InvalidField as exc:
            return Skip(f"the challenge gateway cannot show it: {exc}")
        store.market_receive(
            assignment.task_id, assignment.task_type, dataset_for(assignment.task_type), item
        )
        while True:
            row = store.market_task(assignment.task_id)
            if row is None:
                return Skip("its item was deleted from the challenge gateway")
            if row["label"] is not None:
                log.info(
                    "label owed",
                    extra={
                        "task_id": assignment.task_id,
                        "votes": row["votes"],
                        "agreement": row["agreement"],
                    },
                )
                return Answer(row["label"], int(row["votes"]), round(float(row["agreement"]), 4))
            if row["state"] == "returned":  # set aside earlier (expired, withdrawn)
                return Skip(f"returned by the challenge gateway: {row['reason']}")
            if row["disputed"]:
                store.market_close(assignment.task_id, "returned", "disputed")
                return Skip("disputed: the gateway's sessions did not agree")
            if time.time() - row["received_at"] > self._hold:
                store.market_close(assignment.task_id, "returned", "expired")
                return Skip("expired: no consensus within the gateway's hold time")
            await asyncio.sleep(POLL)

    def done(self, task_id: str, outcome: str) -> None:
        """Acked (or already labeled by this worker) → delivered; withdrawn by its customer, or
        an option the core refused → returned. A lapsed lease or a label that came too late
        (`lease_expired`, `not_held`) changes nothing: the item stays served, and its label is
        given when the core offers the task again."""
        if outcome in ("acked", "already_labeled"):
            self._gw.store.market_close(task_id, "delivered")
        elif outcome in ("withdrawn", "invalid_option"):
            self._gw.store.market_close(task_id, "returned", outcome)

    def paid(self, line: str) -> None:
        return None  # the session logged it; the status counts it (Stats.sats_earned)

    async def aclose(self) -> None:
        return None


class Marketplace:
    """The worker's lifecycle inside the gateway process: started and stopped by the app's
    lifespan. A core that is down only delays delivery; a refused token stops the worker
    (logged) while the gateway goes on serving its own datasets."""

    def __init__(self, gw: Gateway, settings: MarketSettings) -> None:
        self._gw = gw
        self.labeler = MarketLabeler(gw, settings.hold)
        worker = WorkerSettings(
            server=settings.core_addr,
            token=settings.worker_token,
            labeler=self.labeler.name,
            max_in_flight=settings.max_in_flight,
            task_types=settings.task_types,
            progress=0.0,
        )
        self.agent = Agent(worker, self.labeler, agent=AGENT, opted_in_only=settings.opted_in_only)
        self.refused = ""
        self._hold = settings.hold
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Unheld items past the hold time stop being served (the core may never offer their
        task again: cancelled, expired or decided by others)."""
        while True:
            await asyncio.sleep(min(60.0, self._hold / 4))
            try:
                expired = self._gw.store.market_expire(time.time() - self._hold)
            except Exception:
                log.exception("sweeping marketplace items failed; retrying")
                continue
            if expired:
                log.info("marketplace items expired", extra={"count": expired})

    async def _run(self) -> None:
        try:
            await self.agent.run()
        except AuthError as exc:
            self.refused = str(exc)
            log.error(
                "the core refused the gateway's worker token; marketplace off", extra={"error": str(exc)}
            )

    async def stop(self) -> None:
        """End the stream without skipping: what the gateway holds goes back to the core's pool
        and comes back to it (with its votes) when it reconnects."""
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def status(self) -> dict[str, Any]:
        stats = self.agent.stats
        return {
            "enabled": True,
            "connected": stats.connected,
            "worker_id": stats.worker_id,
            "refused": self.refused or None,
            "held": stats.held,
            "labels_acked": stats.labels_acked,
            "payments": stats.payments,
            "sats_earned": stats.sats_earned,
            **self._gw.store.market_counts(),
        }


async def market_status(request: Request, gw: Gateway) -> Response:
    market: Marketplace | None = request.app.state.marketplace
    return JSONResponse(market.status() if market else {"enabled": False})


def routes() -> list[Route]:
    """EXT `GET /dashboard/api/marketplace`: the worker's connection and what it owes."""
    return [Route("/dashboard/api/marketplace", endpoint(market_status), methods=["GET"])]
