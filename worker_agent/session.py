"""One `LabelingService.Work` stream: hello and welcome, assignments to the labeler, labels back.

A session ends in one of three ways:

* the agent asked it to stop: it sends Drain, finishes (or skips with reason "shutdown") what
  it holds, waits a bounded time for the acks of what it sent, closes the stream and returns;
* the core refused the token: AuthError;
* the stream failed or ended: StreamBroken. The agent reconnects (no sooner than the core's
  `retry-after` when it sent one); labels the core never acknowledged are forgotten, because the
  core re-dispatches those tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc
from worker_agent import AGENT
from worker_agent.errors import AuthError, LabelerExhausted, StreamBroken
from worker_agent.labelers.base import Answer, Decision, Labeler, Skip
from worker_agent.outbox import Outbox
from worker_agent.stats import Stats

log = logging.getLogger("worker_agent.session")

# Codes that no retry can fix: the token is wrong or the worker is not allowed.
FATAL_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
WELCOME_TIMEOUT = 30.0  # a core that accepts the stream but never welcomes is treated as down
CLOSE_TIMEOUT = 5.0  # after half-closing, how long the core gets to end the stream
SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class SessionConfig:
    token: str
    max_in_flight: int
    task_types: tuple[str, ...] = ()
    heartbeat: float = 5.0
    drain_timeout: float = 10.0
    agent: str = AGENT
    # A challenge gateway's stream that takes `labor: challenge` tasks only (Hello.opted_in_only).
    opted_in_only: bool = False


class Session:
    def __init__(
        self,
        config: SessionConfig,
        labeler: Labeler,
        stats: Stats,
        stop: asyncio.Event,
        request_stop: Callable[[], None],
    ) -> None:
        self._config = config
        self._labeler = labeler
        self._stats = stats
        self._stop = stop
        self._request_stop = request_stop
        self.welcome: labeling_pb2.Welcome | None = None
        self._held: dict[str, asyncio.Task[None]] = {}
        self._awaiting_ack: set[str] = set()
        self._outbox = Outbox()
        self._changed = asyncio.Event()
        self._draining = False

    async def run(self, stub: labeling_pb2_grpc.LabelingServiceStub) -> None:
        """Serve one stream until stopped (returns) or broken (raises)."""
        call = stub.Work(metadata=(("authorization", f"Bearer {self._config.token}"),))
        tasks: list[asyncio.Task[Any]] = []
        try:
            stopping = asyncio.create_task(self._stop.wait())
            handshake = asyncio.create_task(self._handshake(call))
            tasks += [stopping, handshake]
            await asyncio.wait({stopping, handshake}, return_when=asyncio.FIRST_COMPLETED)
            if not handshake.done():
                return  # stopped before the welcome: nothing is held, nothing to drain
            handshake.result()
            reader = asyncio.create_task(self._read_loop(call))
            writer = asyncio.create_task(self._write_loop(call))
            tasks += [reader, writer, asyncio.create_task(self._heartbeat_loop())]
            await asyncio.wait({stopping, reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                await self._drain(call, reader, writer)
                return
            for task in (reader, writer):
                if task.done():
                    task.result()
            raise StreamBroken("the core ended the stream")
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc.code(), exc.details() or "", exc.trailing_metadata()) from exc
        except asyncio.InvalidStateError as exc:  # a write after the call ended: ask it why
            trailing = await call.trailing_metadata()
            raise _translate(await call.code(), await call.details() or "", trailing) from exc
        finally:
            await self._cleanup(call, tasks)

    async def _handshake(self, call: grpc.aio.StreamStreamCall) -> None:
        hello = labeling_pb2.Hello(
            task_types=list(self._config.task_types),
            max_in_flight=self._config.max_in_flight,
            agent=self._config.agent,
            opted_in_only=self._config.opted_in_only,
        )
        await call.write(labeling_pb2.WorkerMessage(hello=hello))
        try:
            first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
        except TimeoutError:
            raise StreamBroken(f"no welcome within {WELCOME_TIMEOUT:g} s") from None
        if first is grpc.aio.EOF:
            raise StreamBroken("the core ended the stream before welcoming")
        if first.WhichOneof("kind") != "welcome":
            raise StreamBroken(f"protocol: expected welcome first, got {first.WhichOneof('kind')}")
        self.welcome = first.welcome
        self._stats.connected = True
        self._stats.worker_id = self.welcome.worker_id
        log.info(
            "connected",
            extra={
                "worker_id": self.welcome.worker_id,
                "max_in_flight": self.welcome.max_in_flight,
                "requested_max_in_flight": self._config.max_in_flight,
                "lease_seconds": self.welcome.lease_seconds,
            },
        )

    async def _read_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        """Returns at the end of the stream; raises AioRpcError when it fails."""
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            kind = message.WhichOneof("kind")
            if kind == "assignments":
                self._on_assignments(message.assignments.items)
            elif kind == "acks":
                self._on_acks(message.acks.items)
            elif kind == "error":
                self._on_error(message.error)
            elif kind == "payments":
                self._on_payments(message.payments.items)
            elif kind == "notice":
                self._on_notice(message.notice)
            else:  # a second welcome, or a kind newer than this agent: nothing to act on
                log.debug("ignored server message", extra={"kind": kind})

    async def _write_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        """The only writer of the stream; returns once the outbox is closed and flushed."""
        while (batch := await self._outbox.take()) is not None:
            for message in batch:
                await call.write(message)
                kind = message.WhichOneof("kind")
                if kind == "labels":
                    self._stats.labels_sent += len(message.labels.items)
                elif kind == "skip":
                    self._stats.skips += 1

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat)
            if not self._outbox.closed:
                self._outbox.put(labeling_pb2.WorkerMessage(heartbeat=labeling_pb2.Heartbeat()))

    def _on_assignments(self, items: Iterable[labeling_pb2.Assignment]) -> None:
        for assignment in items:
            task_id = assignment.task_id
            if task_id in self._held or task_id in self._awaiting_ack:
                log.warning("assignment already held", extra={"task_id": task_id})
                continue
            self._stats.assigned += 1
            if self._outbox.closed:
                continue  # closing: the core takes it back when the stream ends
            if self._draining and not self._labeler.can_finish_quickly:
                self._send(task_id, Skip(SHUTDOWN))
                continue
            log.debug("assignment", extra={"task_id": task_id, "task_type": assignment.task_type})
            self._held[task_id] = asyncio.create_task(self._label(assignment))
        self._touch()

    def _on_acks(self, items: Iterable[labeling_pb2.Ack]) -> None:
        for ack in items:
            if ack.task_id in self._awaiting_ack:
                self._awaiting_ack.discard(ack.task_id)
                self._stats.labels_acked += 1
                self._labeler.done(ack.task_id, "acked")
        self._touch()

    def _on_error(self, error: labeling_pb2.WorkError) -> None:
        """A refused label or skip: counted and logged; the stream goes on."""
        self._stats.errors += 1
        self._awaiting_ack.discard(error.task_id)
        held = self._held.pop(error.task_id, None)
        if held is not None:  # the core gave up on a task still being decided
            held.cancel()
        self._labeler.done(error.task_id, error.code)
        log.warning(
            "refused by the core",
            extra={"task_id": error.task_id, "code": error.code, "detail": error.message},
        )
        self._touch()

    def _on_notice(self, notice: labeling_pb2.WorkNotice) -> None:
        """The core holds some work back (banned in a task family, or capped): said once, at
        WARNING, so whoever runs the agent learns why work slowed or stopped."""
        self._stats.notices += 1
        fields: dict[str, object] = {"code": notice.code, "detail": notice.message}
        if notice.family_options:
            fields["family_options"] = list(notice.family_options)
        log.warning("the core holds work back", extra=fields)

    def _on_payments(self, items: Iterable[labeling_pb2.Payment]) -> None:
        """Log each payment and add it to the total; a repeated notice is logged at DEBUG only."""
        for payment in items:
            outpoint = f"{payment.txid}:{payment.vout}"
            tasks = payment.task_count or len(payment.task_ids)
            if not self._stats.record_payment(_payment_key(payment), payment.sats):
                log.debug("payment already counted", extra={"outpoint": outpoint})
                continue
            fields = {
                "sats": payment.sats,
                "outpoint": outpoint,
                "tasks": tasks,
                "sats_earned": self._stats.sats_earned,
                "settled_at": payment.settled_at.ToSeconds() if payment.HasField("settled_at") else None,
            }
            log.info("paid", extra=fields)
            log.debug("paid for tasks", extra={"outpoint": outpoint, "task_ids": list(payment.task_ids)})
            self._labeler.paid(paid_line(payment.sats, outpoint, tasks, self._stats.sats_earned))

    async def _label(self, assignment: labeling_pb2.Assignment) -> None:
        task_id = assignment.task_id
        try:
            decision: Decision = await self._labeler.label(assignment)
        except LabelerExhausted:
            decision = Skip(SHUTDOWN)
            self._request_stop()
        except Exception:
            log.exception("labeler failed", extra={"task_id": task_id})
            decision = Skip("labeler error")
        finally:
            self._held.pop(task_id, None)
            self._touch()
        self._send(task_id, decision)

    def _send(self, task_id: str, decision: Decision) -> None:
        if self._outbox.closed:
            return  # too late for this stream: the core re-dispatches the task
        if isinstance(decision, Answer):
            self._awaiting_ack.add(task_id)
            self._outbox.put_label(task_id, decision.option, decision.votes, decision.agreement)
        else:
            skip = labeling_pb2.Skip(task_id=task_id, reason=decision.reason)
            self._outbox.put(labeling_pb2.WorkerMessage(skip=skip))
        self._touch()

    def _withdraw_all(self, reason: str) -> None:
        for task_id, task in list(self._held.items()):
            task.cancel()
            self._send(task_id, Skip(reason))
        self._held.clear()
        self._touch()

    async def _drain(
        self, call: grpc.aio.StreamStreamCall, reader: asyncio.Task[None], writer: asyncio.Task[None]
    ) -> None:
        """Stop taking work, finish or give back what is held, wait for acks, close the stream."""
        log.info("draining", extra={"held": len(self._held), "awaiting_ack": len(self._awaiting_ack)})
        self._draining = True
        self._outbox.put(labeling_pb2.WorkerMessage(drain=labeling_pb2.Drain()))
        timeout = self._config.drain_timeout
        watch = (reader, writer)
        if not self._labeler.can_finish_quickly or not await self._wait_until(
            lambda: not self._held, timeout, watch
        ):
            self._withdraw_all(SHUTDOWN)
        if not await self._wait_until(lambda: not self._awaiting_ack, timeout, watch):
            log.warning("drain: acks still missing", extra={"awaiting_ack": len(self._awaiting_ack)})
        self._outbox.close()
        await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT)  # flushed, or failed with the stream
        if writer.done() and _ok(writer):
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.done_writing()
                await asyncio.wait_for(asyncio.shield(reader), CLOSE_TIMEOUT)
        if not _ok(reader) or not _ok(writer):
            log.warning("drain: the stream broke; unacknowledged labels will be re-dispatched")
        log.info("drained", extra={"unacked": len(self._awaiting_ack)})

    async def _wait_until(
        self, done: Callable[[], bool], timeout: float, watch: Iterable[asyncio.Task[None]]
    ) -> bool:
        """Wait for `done()`; False on timeout or when a watched task (the stream) ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            if any(task.done() for task in watch) or loop.time() >= deadline:
                return False
            self._changed.clear()
            changed = asyncio.create_task(self._changed.wait())
            await asyncio.wait(
                {changed, *watch}, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()
        return True

    def _touch(self) -> None:
        self._stats.held = len(self._held)
        self._changed.set()

    async def _cleanup(self, call: grpc.aio.StreamStreamCall, tasks: list[asyncio.Task[Any]]) -> None:
        """Cancel everything this stream started; a break withdraws held tasks from the labeler."""
        self._stats.connected = False
        pending = [*tasks, *self._held.values()]
        self._held.clear()
        self._touch()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        call.cancel()


def paid_line(sats: int, outpoint: str, tasks: int, earned: int) -> str:
    """The payment as a person reads it, e.g. `paid 600 sats · <txid>:1 · 2 tasks · 1800 sats earned`."""
    noun = "task" if tasks == 1 else "tasks"
    return f"paid {sats} sats · {outpoint} · {tasks} {noun} · {earned} sats earned"


def _payment_key(payment: labeling_pb2.Payment) -> str:
    """What makes a notice a repeat: the same output and the same tasks. Not the output alone:
    a settler may report one output to the same worker in parts, each paying other tasks."""
    tasks = hashlib.sha256("\n".join(payment.task_ids).encode()).hexdigest()[:16]
    return f"{payment.txid}:{payment.vout}:{payment.sats}:{payment.task_count}:{tasks}"


def _ok(task: asyncio.Task[None]) -> bool:
    """True unless the task ended with an error (also marks the error as retrieved)."""
    return not task.done() or task.cancelled() or task.exception() is None


def _translate(code: grpc.StatusCode | None, details: str, trailing: Any = None) -> Exception:
    name = code.name if code is not None else "UNKNOWN"
    if code in FATAL_CODES:
        return AuthError(f"the core refused this worker ({name}): {details or 'no details'}")
    message = f"{name}: {details}" if details else name
    return StreamBroken(message, code=name, retry_after=retry_after(trailing))


# Longer than this is not taken at its word: a misconfigured core must not park its workers.
MAX_RETRY_AFTER = 300.0


def retry_after(trailing: Any) -> float:
    """The core's `retry-after` trailing metadata in seconds (0 when absent or unreadable)."""
    for key, value in trailing or ():
        if key == "retry-after":
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            try:
                seconds = float(text)
            except ValueError:
                return 0.0
            return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    return 0.0
