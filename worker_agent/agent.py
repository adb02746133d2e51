"""The agent: sessions one after another, reconnecting with backoff, until told to stop.

A core restart or a network cut costs the agent nothing but a short pause: every attempt
opens a fresh channel (so gRPC's own, much longer, reconnect backoff never applies), the
delay grows from 0.1 s to a 5 s cap and starts again after a successful welcome; when the core
ended the stream with a `retry-after` (over the labels-per-second limit) the agent waits at
least that long. Only a refused token ends the agent, because no retry can fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import grpc

from asg_grpc.v1 import labeling_pb2_grpc
from worker_agent import AGENT, backoff
from worker_agent.errors import AuthError, StreamBroken
from worker_agent.labelers.base import Labeler
from worker_agent.session import Session, SessionConfig
from worker_agent.settings import WorkerSettings
from worker_agent.stats import Progress, Stats

log = logging.getLogger("worker_agent")


class Agent:
    def __init__(
        self,
        settings: WorkerSettings,
        labeler: Labeler,
        rand: Callable[[], float] = random.random,
        *,
        agent: str = AGENT,
        opted_in_only: bool = False,
    ) -> None:
        """`agent` names the program in Hello; `opted_in_only` is a challenge gateway's choice
        of opted-in work only (asg_challenge/marketplace.py)."""
        self._settings = settings
        self._labeler = labeler
        self._rand = rand
        self._stop = asyncio.Event()
        self.stats = Stats()
        self.progress = Progress(self.stats)
        self.session_config = SessionConfig(
            token=settings.token,
            max_in_flight=settings.effective_max_in_flight,
            task_types=settings.task_types,
            heartbeat=settings.heartbeat,
            drain_timeout=settings.drain_timeout,
            agent=agent,
            opted_in_only=opted_in_only,
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Drain and exit: no new work; held work is finished or given back."""
        self._stop.set()

    async def run(self) -> None:
        """Work until stopped; raises AuthError when the core refuses the token."""
        reporter = None
        if self._settings.progress > 0:
            reporter = asyncio.create_task(self.progress.report_every(self._settings.progress))
        try:
            await self._sessions()
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            await self._labeler.aclose()
            log.info("stopped", extra=self.progress.summary())

    async def _sessions(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            session = Session(self.session_config, self._labeler, self.stats, self._stop, self.request_stop)
            channel = self._open_channel()
            try:
                await session.run(labeling_pb2_grpc.LabelingServiceStub(channel))
            except AuthError as exc:
                log.error(
                    "refused; not retrying",
                    extra={"error": str(exc), "hint": "check ASG_WORKER_TOKEN / --token"},
                )
                raise
            except StreamBroken as exc:
                if session.welcome is not None:
                    attempt = 0  # it worked until now: come back fast
                if not self._stop.is_set():
                    pause = max(backoff.delay(attempt, self._rand()), exc.retry_after)
                    attempt += 1
                    self.stats.reconnects += 1
                    log.warning(
                        "stream lost; reconnecting",
                        extra={"error": str(exc), "code": exc.code, "retry_in_s": round(pause, 3)},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), pause)
            finally:
                await channel.close()

    def _open_channel(self) -> grpc.aio.Channel:
        s = self._settings
        if not s.tls:
            return grpc.aio.insecure_channel(s.server)
        roots = s.ca_file.read_bytes() if s.ca_file else None
        return grpc.aio.secure_channel(s.server, grpc.ssl_channel_credentials(root_certificates=roots))
