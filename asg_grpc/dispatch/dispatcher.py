"""The dispatcher: open tasks in memory, worker sessions, leases, group-committed labels.

Everything here runs on the core's event loop, so the in-memory state changes one event at a
time; the store is written by `flush`, which batches whatever changed since the previous
flush into one transaction and only then acknowledges the labels it held.

On SQLite dispatch runs in one core process per store (docs/labeling.md). On a shared store
(Aerospike) every core dispatches the partitions of the open tasks it holds
(asg_grpc/dispatch/partitions.py): `own` and `disown` change which.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import dataclasses
import heapq
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from asg_grpc import metrics
from asg_grpc.background import stop_tasks, wait_event
from asg_grpc.dispatch import labor
from asg_grpc.dispatch.areas import DispatcherStore
from asg_grpc.dispatch.outbox import Notice, Outbox
from asg_grpc.dispatch.payments import WorkerPayment, problem
from asg_grpc.dispatch.quality import Cadence, Quality
from asg_grpc.dispatch.traffic import Traffic, TrafficSettings
from asg_grpc.domain import consensus
from asg_grpc.domain.dawid_skene import WorkerReport
from asg_grpc.domain.errors import Unavailable, ValidationError
from asg_grpc.domain.labeling import LabelRefused, OpenTask, Refusal
from asg_grpc.domain.tasks import LABORS, TaskStatus
from asg_grpc.domain.workers import Worker
from asg_grpc.store.offload import threads_of
from asg_grpc.store.task_records import LabelingBatch

log = logging.getLogger("asg.dispatch")

REAP_EVERY = 0.25  # seconds between looks for lapsed leases and silent streams
# A reaper tick this much later than asked means the core itself was not running.
STALL = 1.0
DEADLINES_EVERY = 1.0  # seconds between looks for tasks past their deadline


@dataclass(frozen=True)
class DispatchSettings:
    lease_seconds: float = 60.0
    max_in_flight: int = 256
    # The most open tasks kept in memory; more are loaded as these are decided.
    window: int = 50_000
    # Tasks with a free slot kept ready even with no worker connected (see _low_water).
    min_ready: int = 1000
    # Without any message for this long, a worker's stream is closed and its slots freed.
    idle_timeout: float = 30.0
    # How often the store is checked for tasks submitted through another core process.
    poll_interval: float = 0.5
    # After a wake-up, wait this long so one load picks up a burst of submissions.
    load_delay: float = 0.01
    # At most how often the adaptive engine re-estimates its workers (EM); sooner while it is
    # small, and only once its labels grew enough (more while refreshes change little) or
    # labeling paused (`Cadence`, Quality.due).
    refresh_interval: float = 5.0
    refresh_growth: float = 0.5
    refresh_max_age: float = 60.0
    refresh_full_labels: int = 10_000
    # At most how often the engine's snapshot is saved besides at stop (_save_quality).
    save_interval: float = 30.0
    # How often the registered workers are read and the tasks none of them can label any
    # more are closed (docs/labeling.md, "When no worker is left").
    roster_interval: float = 5.0
    # The gold share of each worker's labels and the cap on its share of a customer's
    # (dispatch/traffic.py, docs/quality.md "Gold share and traffic caps").
    traffic: TrafficSettings = field(default_factory=TrafficSettings)


@dataclass(eq=False)
class Session:
    """One Work stream of one worker."""

    worker: Worker
    task_types: frozenset[str]
    max_in_flight: int
    outbox: Outbox = field(default_factory=Outbox)
    held: dict[str, float] = field(default_factory=dict)  # task_id → lease deadline
    draining: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    # Why work was held back, as told to the agent (WorkNotice): each reason once, until the
    # worker is offered such work again.
    notified: set[tuple[str, ...]] = field(default_factory=set)
    opted_in_only: bool = False  # a challenge gateway's stream taking `labor: challenge` only

    @property
    def worker_id(self) -> str:
        return self.worker.worker_id

    @property
    def wants_work(self) -> bool:
        return not self.draining and not self.outbox.closed and len(self.held) < self.max_in_flight


class Dispatcher:
    def __init__(self, store: DispatcherStore, settings: DispatchSettings, partitions: int = 0) -> None:
        self._store = store
        self.settings = settings
        # Partitioned dispatch: only tasks with `seq % partitions` in `_owned` are ours
        # (0: every task, one dispatcher per store).
        self._partitions = partitions
        self._owned: set[int] = set()
        self._tasks: dict[str, OpenTask] = {}
        # Tasks with a free slot, by seq (oldest first): a sorted list plus the seq → task map.
        self._available: list[int] = []
        self._by_seq: dict[int, OpenTask] = {}
        self._last_seq = 0
        self._starved = False
        # Whether the store may hold open tasks not loaded yet (so loading more could help).
        self._more_in_store = True
        self._sessions: list[Session] = []
        # The same sessions by worker (a worker token may open several streams).
        self._by_worker: dict[str, list[Session]] = {}
        self._leases: list[tuple[float, str, str]] = []  # (deadline, task_id, worker_id) heap
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._batch = self._new_batch()
        # Verified and no-consensus outcomes in the batch (labels, closed tasks): counted at its flush.
        self._decisions = [0, 0]
        self._touched: dict[str, OpenTask] = {}
        self._acks: list[tuple[Session, str]] = []
        # On a store with threads of its own (Aerospike) the writer's flush runs there, one
        # hop per flush, at most one in flight (`_flight`); a synchronous flush lands it first.
        self._threads = threads_of(store)
        self._flight: _Flight | None = None
        self._tasks_running: list[asyncio.Task[None]] = []
        self._closed = False
        self._quality: Quality | None = None  # read from the store once, at start or first use
        # Registered workers by (labor, task type) who could be offered such a task (read every
        # roster_interval), for _close_stranded.
        self._roster: dict[tuple[str, str], list[str]] = {}
        self.traffic = Traffic(settings.traffic)
        self._saved_at = time.monotonic()  # of the engine's snapshot (_save_quality)

    @property
    def quality(self) -> Quality:
        if self._quality is None:
            s = self.settings
            cadence = Cadence(s.refresh_interval, s.refresh_growth, s.refresh_max_age, s.refresh_full_labels)
            self._quality = Quality(self._store, cadence)
        return self._quality

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._load()
        loop = asyncio.get_running_loop()
        for coro in (self._loader(), self._writer(), self._reaper(), self._refresher()):
            self._tasks_running.append(loop.create_task(coro))

    async def stop(self, *, flush: bool = True) -> None:
        """Commit and ack what was received (unless `flush` is False: the lease was lost and
        another core owns these tasks now), then end every stream and refuse new ones."""
        self._closed = True
        await stop_tasks(*self._tasks_running)
        try:
            if flush:
                self.flush()
                self._save_quality(force=True)
        finally:
            for session in list(self._sessions):
                session.outbox.close()

    def wake(self) -> None:
        """New tasks were submitted: load them now rather than at the next poll."""
        self._more_in_store = True
        self._wake.set()

    def withdraw(self, task_ids: Sequence[str]) -> None:
        """These tasks were closed in the store (cancelled, expired, decided elsewhere): drop
        them, and tell the workers holding them to stop."""
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is None:
                continue
            self._drop_holders(task)
            self._touched.pop(task_id, None)
            self._forget(task)
        self._wake.set()  # room in the window

    def _drop_holders(self, task: OpenTask) -> None:
        """The task is closing under its holders: each is told to stop (WITHDRAWN)."""
        for worker_id in task.claims:
            for session in self._by_worker.get(worker_id, ()):
                if session.held.pop(task.task_id, None) is not None:
                    session.outbox.error(task.task_id, Refusal.WITHDRAWN)
        task.claims.clear()

    # partitions (a shared store) -----------------------------------------------------------

    def _ours(self, seq: int) -> bool:
        return not self._partitions or seq % self._partitions in self._owned

    def own(self, partitions: set[int]) -> None:
        """These partitions are ours now: their open tasks are loaded from the oldest on."""
        self._owned |= partitions
        self._last_seq = 0
        self._more_in_store = True
        self._wake.set()

    def disown(self, partitions: set[int]) -> None:
        """These partitions are another core's (given back, or taken over): what was received
        for them is committed first, then their tasks are dropped and their holders told."""
        self._owned -= partitions
        try:
            self.flush()
        except Exception:  # the labels stay pending; the new owner's filtered writes decide
            log.exception("committing before giving partitions back failed")
        self.withdraw([t.task_id for t in self._tasks.values() if not self._ours(t.seq)])
        self._fill_all()

    # sessions ------------------------------------------------------------------------------

    def connect(
        self, worker: Worker, task_types: list[str], max_in_flight: int, opted_in_only: bool = False
    ) -> Session:
        """A stream said hello. Raises ValidationError when it asks only for task types the
        worker is not registered for (it could never get work), Unavailable once stopping."""
        if self._closed:
            raise Unavailable("the core is shutting down; reconnect shortly")
        labor.check_hello(worker, opted_in_only)
        types = frozenset(worker.task_types)
        if task_types:
            types &= frozenset(task_types)
            if not types:
                raise ValidationError(
                    "hello.task_types", f"must include one of {', '.join(worker.task_types)}"
                )
        session = Session(
            worker=worker,
            task_types=types,
            max_in_flight=max(1, min(max_in_flight or 1, self.settings.max_in_flight)),
            opted_in_only=opted_in_only,
        )
        self._sessions.append(session)
        self._by_worker.setdefault(worker.worker_id, []).append(session)
        log.info(
            "worker connected", extra={"worker_id": worker.worker_id, "max_in_flight": session.max_in_flight}
        )
        self._fill(session)
        return session

    def disconnect(self, session: Session) -> None:
        """The stream ended: every slot it held goes back at once."""
        if session not in self._sessions:
            return
        self._sessions.remove(session)
        streams = self._by_worker[session.worker_id]
        streams.remove(session)
        if not streams:
            del self._by_worker[session.worker_id]
        session.outbox.close()
        for task_id in list(session.held):
            self._release(session, task_id)
        log.info("worker disconnected", extra={"worker_id": session.worker_id})
        self._fill_all()

    def drain(self, session: Session) -> None:
        session.draining = True

    def seen(self, session: Session) -> None:
        session.last_seen = time.monotonic()

    # payments ------------------------------------------------------------------------------

    def notify_payments(self, payments: Sequence[WorkerPayment]) -> int:
        """Queue each payment to every open stream of its worker; returns how many were queued.

        Best-effort and never raises: a worker with no open stream simply misses the notice
        (the payment is on chain and in the receipt API), and a payment with an impossible
        value is logged and skipped. Call it on the core's event loop, after the payout
        transaction was accepted; it only appends to in-memory queues, so thousands of
        payments cost a few milliseconds. From another thread, use
        `loop.call_soon_threadsafe(dispatcher.notify_payments, payments)`.
        """
        queued = 0
        try:
            by_worker = self._by_worker
            for payment in payments:
                sessions = by_worker.get(payment.worker_id)
                if not sessions:
                    continue
                why = problem(payment)
                if why is not None:
                    log.warning(
                        "payment notice skipped", extra={"worker_id": payment.worker_id, "problem": why}
                    )
                    continue
                for session in sessions:
                    if session.outbox.pay(payment):
                        queued += 1
        except Exception:  # a notice must never fail the settler that paid
            log.exception("payment notices failed", extra={"queued": queued})
        return queued

    # worker quality (operators) -----------------------------------------------------------

    def reinstate(self, worker_id: str, options: tuple[str, ...] | None) -> list[WorkerReport]:
        """An operator lifts a ban: saved at once, and the worker may be offered work again."""
        reports = self.quality.reinstate(worker_id, options)
        self.flush()
        self._save_quality(force=True)
        self._fill_all()
        return reports

    # labels and skips ----------------------------------------------------------------------

    def label(self, session: Session, task_id: str, option: str) -> None:
        """Count one label (acked after its commit) or tell the worker why not."""
        task = self._tasks.get(task_id)
        if task is None or task_id not in session.held:
            # Held by this stream, not merely by this worker on some other stream.
            labeled = task is not None and session.worker_id in task.labels
            session.outbox.error(task_id, Refusal.ALREADY_LABELED if labeled else Refusal.NOT_HELD)
            return
        now = time.time()
        try:
            outcome = task.label(session.worker_id, option, self.quality.engine if task.adaptive else None)
        except LabelRefused as refused:
            session.outbox.error(task_id, refused.refusal)
            return
        session.held.pop(task_id, None)
        self.traffic.labeled(session.worker_id, task)
        self._batch.labels.append((task_id, session.worker_id, option, now))
        self._count(outcome)
        self._touch(task)
        self._acks.append((session, task_id))
        if task.closed:
            self._forget(task)
            self._wake.set()  # room in the window
        elif isinstance(outcome, consensus.NeedMore) and task.free_slots > 0:
            self._make_available(task)
            self._offer(task)
        self._fill(session)

    def skip(self, session: Session, task_id: str, reason: str) -> None:
        task = self._tasks.get(task_id)
        if task is None or task_id not in session.held:
            session.outbox.error(task_id, Refusal.NOT_HELD)
            return
        if task.skip(session.worker_id):
            self._touch(task)  # back to pending
        session.held.pop(task_id, None)
        self._batch.skips.append((task_id, session.worker_id, reason[:200], time.time()))
        self._dirty.set()
        self._make_available(task)
        self._fill_all()

    # internals -----------------------------------------------------------------------------

    @staticmethod
    def _new_batch() -> LabelingBatch:
        return LabelingBatch(now=0.0, labels=[], skips=[], tasks=[])

    def _touch(self, task: OpenTask) -> None:
        """The task's state changed: write it with the next flush."""
        self._touched[task.task_id] = task
        self._dirty.set()

    @property
    def streams(self) -> int:
        """Work streams open now (for asg_connected_workers)."""
        return len(self._sessions)

    @property
    def _low_water(self) -> int:
        """Tasks with a free slot worth having in memory: a few rounds of what the connected
        workers can hold, so loading keeps ahead of them without holding every open task."""
        capacity = sum(session.max_in_flight for session in self._sessions)
        return max(self.settings.min_ready, 4 * capacity)

    def _load(self) -> None:
        room = self.settings.window - len(self._tasks)
        # A session found nothing it may take among the ready tasks (other task types, or
        # tasks it already labeled): look further, up to the whole window.
        want = room if self._starved else min(room, self._low_water - len(self._available))
        self._starved = False
        if want <= 0:
            return
        loaded = self._store.open_tasks(after_seq=self._last_seq, limit=want)
        # A full page means there may be more; a short one that the store is drained until
        # a submission wakes us, room opens, or the next poll (other processes' submissions).
        self._more_in_store = len(loaded) == want
        quality = self.quality
        for task in loaded:
            self._last_seq = max(self._last_seq, task.seq)
            if task.task_id in self._tasks or not self._ours(task.seq):
                continue  # loaded already (a rescan after gaining partitions), or not ours
            if task.status is TaskStatus.IN_PROGRESS and not task.labels:
                # Claimed when a core stopped (leases live in memory) and never labeled:
                # nobody holds it now.
                task.status = TaskStatus.PENDING
                self._touch(task)
            quality.adopt(task)
            if task.closed:  # decided by the engine from labels stored before a restart
                self._touch(task)
                quality.forget(task)
                continue
            self._tasks[task.task_id] = task
            self._by_seq[task.seq] = task
            self.traffic.loaded(task)
            if task.free_slots > 0:
                # Usually newer than any in memory (an append); older after gaining partitions.
                self._make_available(task)

    def _forget(self, task: OpenTask) -> None:
        self._more_in_store = True  # room in the window: what did not fit may load now
        del self._tasks[task.task_id]
        self._by_seq.pop(task.seq, None)
        self.quality.forget(task)
        self.traffic.forget(task)
        self._remove_available(task)

    def _make_available(self, task: OpenTask) -> None:
        if task.task_id not in self._tasks or task.free_slots <= 0:
            return
        i = bisect.bisect_left(self._available, task.seq)
        if i == len(self._available) or self._available[i] != task.seq:
            self._available.insert(i, task.seq)

    def _remove_available(self, task: OpenTask) -> None:
        i = bisect.bisect_left(self._available, task.seq)
        if i < len(self._available) and self._available[i] == task.seq:
            del self._available[i]

    def _release(self, session: Session, task_id: str) -> None:
        session.held.pop(task_id, None)
        task = self._tasks.get(task_id)
        if task is None:
            return
        if task.release(session.worker_id):
            self._touch(task)  # back to pending
        self._make_available(task)

    def _fill_all(self) -> None:
        for session in self._sessions:
            if not self._available:
                return
            self._fill(session)

    def _offer(self, task: OpenTask) -> None:
        """The task gained a free slot (`adaptive` asked for one more label): offered to the
        first sessions with room that may take it. Only this task is new to them: a session
        with room was filled after its own last label, so a fill of every session (as a
        release or skip does) would scan the ready tasks for nothing else."""
        now = time.time()
        deadline = now + self.settings.lease_seconds
        for session in self._sessions:
            if task.free_slots <= 0:
                break
            if session.wants_work and self._offerable(session, task, now):
                self._assign(session, task, deadline, now)
        if task.free_slots <= 0:
            self._remove_available(task)

    def _fill(self, session: Session) -> None:
        """Offer the session the oldest tasks it may take, up to its max in flight. Gold tasks
        come first while the worker's gold is under its share, else after all the others."""
        if not session.wants_work:
            return
        worker_id = session.worker_id
        now = time.time()
        deadline = now + self.settings.lease_seconds
        traffic = self.traffic
        available, by_seq, held, room = self._available, self._by_seq, session.held, session.max_in_flight
        if traffic.wants_gold(worker_id):
            self._offer_gold(session, now, deadline, 1)
        i = 0
        # Runs after every label, over the oldest tasks first: most it passes over are ones this
        # worker holds, has labeled or skipped, so those lookups come before the full check.
        # Only `held` grows in the loop, so `wants_work` reduces to its length.
        while i < len(available) and len(held) < room:
            task = by_seq[available[i]]
            if (
                worker_id in task.claims
                or worker_id in task.labels
                or worker_id in task.skipped
                or task.gold is not None
                or not self._offerable(session, task, now)
            ):
                i += 1
                continue
            self._assign(session, task, deadline, now)
            if task.free_slots <= 0:
                del available[i]
            else:
                i += 1
        if len(held) < room and traffic.gold_tasks:
            self._offer_gold(session, now, deadline, room - len(held))
        if self._more_in_store and (session.wants_work or len(self._available) < self._low_water // 2):
            # Nothing (or little) left here that it may take, and the store has more.
            self._starved = session.wants_work
            self._wake.set()

    def _offerable(self, session: Session, task: OpenTask, now: float) -> bool:
        """Whether the session may be offered the task. When only the engine (a ban, its family
        share cap) or the customer share cap keeps it from the worker, the agent is told why,
        once per reason."""
        worker_id = session.worker_id
        if task.task_type not in session.task_types or not task.offerable_to(worker_id, now):
            return False
        if not labor.allows(task.labor, session.worker.challenge_gateway, session.opted_in_only):
            return False
        if not self.quality.eligible(worker_id, task):
            reason: tuple[str, ...] = ("family", *task.options)
        elif self.traffic.capped(worker_id, task.customer_id):
            reason = ("customer", task.customer_id)
        else:
            return True
        if reason not in session.notified:
            session.notified.add(reason)
            if reason[0] == "family":
                notice = self.quality.withheld(worker_id, task)
            else:
                notice = Notice("capped", self.traffic.capped_message(worker_id, task.customer_id))
            session.outbox.notice(notice)
            log.info("work held back", extra={"worker_id": worker_id, "code": notice.code})
        return False

    def _assign(self, session: Session, task: OpenTask, deadline: float, now: float) -> None:
        """One slot of the task to the session, leased until `deadline`."""
        if task.claim(session.worker_id, deadline, now):
            self._touch(task)  # pending → in_progress
        session.held[task.task_id] = deadline
        heapq.heappush(self._leases, (deadline, task.task_id, session.worker_id))
        session.outbox.assign(task, deadline)
        if session.notified:  # such work flows again: a later hold-back is news
            session.notified.discard(("family", *task.options))
            session.notified.discard(("customer", task.customer_id))

    def _offer_gold(self, session: Session, now: float, deadline: float, most: int) -> None:
        """Up to `most` open gold tasks the session may take, oldest first."""
        for task in self.traffic.gold_tasks.values():
            if most <= 0:
                return
            if task.task_id not in self._tasks or not self._offerable(session, task, now):
                continue
            self._assign(session, task, deadline, now)
            most -= 1
            if task.free_slots <= 0:
                self._remove_available(task)

    def flush(self) -> None:
        """Commit what changed since the last flush, then ack the labels it contained.

        If the commit fails, nothing is dropped: the changes stay pending and the next flush
        writes them together with whatever came since."""
        self._land()  # a flush off the loop in flight is finished first: flushes stay in order
        batch, acks = self._batch, self._acks
        if not (batch.labels or batch.skips or self._touched):
            return
        batch.tasks = list(self._touched.values())
        batch.now = time.time()
        try:
            closed = self._store.record_labeling(batch)
        except Exception:
            self._dirty.set()  # the writer tries again
            raise
        decisions = self._decisions
        self._batch, self._acks, self._touched, self._decisions = self._new_batch(), [], {}, [0, 0]
        self._committed(batch, acks, decisions, closed)

    def _committed(
        self, batch: LabelingBatch, acks: list[tuple[Session, str]], decisions: list[int], closed: set[str]
    ) -> None:
        """After a flush's commit: count it, ack its labels, drop the tasks closed meanwhile."""
        metrics.labels_counted(len(batch.labels), *decisions)
        for session, task_id in acks:
            if task_id in closed:  # the label came too late and was not stored
                session.outbox.error(task_id, Refusal.WITHDRAWN)
            else:
                session.outbox.ack(task_id)
        if closed:
            # Labels taken for them while this flush was off the loop are refused too.
            self._batch.labels = [label for label in self._batch.labels if label[0] not in closed]
            late = [(session, task_id) for session, task_id in self._acks if task_id in closed]
            self._acks = [ack for ack in self._acks if ack[1] not in closed]
            for session, task_id in late:
                session.outbox.error(task_id, Refusal.WITHDRAWN)
            self.withdraw(list(closed))

    async def _flush_off_loop(self) -> None:
        """`flush` with the store's write on its threads: the batch and a copy of each changed
        task (the loop goes on changing the live ones) are handed over, and what arrives
        meanwhile starts the next batch."""
        assert self._threads is not None
        self._land()
        batch, acks = self._batch, self._acks
        if not (batch.labels or batch.skips or self._touched):
            return
        batch.tasks = [_copy(task) for task in self._touched.values()]
        batch.now = time.time()
        flight = _Flight(
            self._threads.submit(partial(self._store.record_labeling, batch)),
            batch,
            acks,
            self._touched,
            self._decisions,
        )
        self._flight = flight
        self._batch, self._acks, self._touched, self._decisions = self._new_batch(), [], {}, [0, 0]
        await asyncio.wait([asyncio.wrap_future(flight.future)])
        if self._flight is flight:
            self._land()

    def _land(self) -> None:
        """Finish the flush in flight: wait for it (only a synchronous flush ever does), then
        ack it, or put its changes back in front of what came since when it failed."""
        flight, self._flight = self._flight, None
        if flight is None:
            return
        try:
            closed = flight.future.result()
        except BaseException as exc:
            batch = flight.batch
            self._batch.labels[:0] = batch.labels
            self._batch.skips[:0] = batch.skips
            self._acks[:0] = flight.acks
            self._touched = {**flight.touched, **self._touched}
            self._decisions = [a + b for a, b in zip(flight.decisions, self._decisions, strict=True)]
            self._dirty.set()  # the writer tries again
            if isinstance(exc, concurrent.futures.CancelledError):
                return  # never started (the core is stopping): the next flush writes it
            raise
        self._committed(flight.batch, flight.acks, flight.decisions, closed)

    # background loops ----------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            await self._dirty.wait()
            # Let the messages already received join this commit.
            await asyncio.sleep(0)
            self._dirty.clear()
            try:
                if self._threads is None:
                    self.flush()
                else:
                    await self._flush_off_loop()
            except Exception:
                log.exception("label commit failed; retrying")
                self._dirty.set()
                await asyncio.sleep(0.5)

    async def _refresher(self) -> None:
        """The adaptive engine's background step: EM over the labels so far, then the engine is
        saved, after a flush, so the saved state never holds a label the store has not."""
        while True:
            # Looks ten times per interval: a small engine may refresh sooner (Quality.due).
            await asyncio.sleep(self.settings.refresh_interval / 10)
            try:
                if self.quality.due():
                    await self.quality.refresh_off_loop()
                    self.flush()
                    self._save_quality()
                    self._fill_all()  # a lifted ban, a changed share: offers may differ now
            except Exception:  # estimates may lag; labeling goes on
                log.exception("refreshing the consensus engine failed; retrying")

    def _save_quality(self, *, force: bool = False) -> None:
        """Save the engine's snapshot: at once when `force` (stop, an operator's change), else at
        most every `save_interval`. A snapshot is O(every task the engine holds), so saving it
        after every refresh and every close cost more core CPU than the labels did; what a crash
        loses meanwhile is what the engine learnt from tasks closed since (open tasks' labels
        are replayed from the store; decisions are in the task rows)."""
        if self._quality is None or not self._quality.engine.families:
            return
        now = time.monotonic()
        if force or now - self._saved_at >= self.settings.save_interval:
            self._saved_at = now
            self._quality.save(time.time())

    async def _loader(self) -> None:
        while True:
            if await wait_event(self._wake, self.settings.poll_interval):
                await asyncio.sleep(self.settings.load_delay)
            else:
                self._more_in_store = True  # another process may have submitted
            self._wake.clear()
            try:
                self._load()
                self._fill_all()
            except Exception:  # a failed read must not end loading for good
                log.exception("loading open tasks failed; retrying")
                await asyncio.sleep(0.5)

    async def _reaper(self) -> None:
        loop = asyncio.get_running_loop()
        last = next_deadlines = loop.time()
        next_roster = last + self.settings.roster_interval
        while True:
            await asyncio.sleep(REAP_EVERY)
            now = loop.time()
            stalled, last = now - last - REAP_EVERY, now
            try:
                if stalled > STALL:
                    self._resume(stalled)
                self._reap()
                if now >= next_deadlines:
                    next_deadlines = now + DEADLINES_EVERY
                    self.withdraw(self._store.expire_due(time.time()))
                if now >= next_roster:
                    next_roster = now + self.settings.roster_interval
                    self._read_roster()
                    self._close_stranded()
            except Exception:  # expiring leases must go on whatever happened once
                log.exception("reaping leases failed; retrying")

    def _read_roster(self) -> None:
        """Who could ever label a task of each labor and type: the registered workers, and the
        workers connected now (one registered since the last read included); for a `challenge`
        task only the challenge gateways among them (labor.could_label)."""
        by_kind: dict[tuple[str, str], set[str]] = {}
        workers = [*self._store.workers(), *(s.worker for s in self._sessions)]
        for worker in workers:
            for task_labor in LABORS:
                if labor.could_label(task_labor, worker):
                    for task_type in worker.task_types:
                        by_kind.setdefault((task_labor, task_type), set()).add(worker.worker_id)
        self._roster = {kind: sorted(ids) for kind, ids in by_kind.items()}

    def _count(self, outcome: consensus.Outcome) -> None:
        """An outcome for the metrics, counted when the batch that holds it is committed."""
        if isinstance(outcome, consensus.Decided):
            self._decisions[0] += 1
        elif isinstance(outcome, consensus.NoConsensus):
            self._decisions[1] += 1

    def _close_stranded(self) -> int:
        """Close the tasks no registered worker can label any more, so none stays open for
        ever: each was seen by some worker (labeled or skipped), nobody holds it, and every
        worker who could be offered it labeled it, skipped it or is banned from its family. A
        worker whose lease lapsed may come back, so it still counts. A task nobody has seen
        waits for workers (or its deadline), except a `challenge` task too few challenge
        gateways could ever decide (labor.hopeless): closed at once, its holders told. How
        many were closed."""
        quality = self.quality
        bans = bool(quality.engine.families)  # without bans, only a count can strand a task
        closed = 0
        for task in list(self._tasks.values()):
            if task.closed:
                continue
            workers = self._roster.get((task.labor, task.task_type), [])
            if task.labor == labor.CHALLENGE:  # few tasks: counted one by one
                able = sum(1 for w in workers if self._may_label(w, task))
                if labor.hopeless(task, able):
                    self._drop_holders(task)
                elif task.claims or not (task.labels or task.skipped) or able:
                    continue
            else:
                if task.claims or not (task.labels or task.skipped):
                    continue
                if not bans and len(task.labels) + len(task.skipped) < len(workers):
                    continue
                if any(self._may_label(w, task) for w in workers):
                    continue
            outcome = labor.failure_reason(task, quality.close(task))
            log.info(
                "no worker left for a task: closed",
                extra={"task_id": task.task_id, "status": task.status.value, "labels": len(task.labels)},
            )
            self._count(outcome)
            self._touch(task)
            self._forget(task)
            closed += 1
        if closed:
            self._save_quality()
            self._wake.set()  # room in the window
        return closed

    def _may_label(self, worker_id: str, task: OpenTask) -> bool:
        """Whether a worker of the roster could still label the task (for _close_stranded)."""
        seen = worker_id in task.labels or worker_id in task.skipped
        return not seen and self.quality.eligible(worker_id, task)

    def _resume(self, stalled: float) -> None:
        """The core did not run for `stalled` seconds (SIGSTOP, a suspended VM, a blocked
        loop). Workers could not be heard meanwhile, so that time does not count against
        their leases and idle timers: every one of them is pushed back by as much."""
        log.warning(
            "the core was paused; leases and idle timers extended", extra={"seconds": round(stalled, 3)}
        )
        for deadline, task_id, worker_id in self._leases:
            task = self._tasks.get(task_id)
            if task is not None and task.claims.get(worker_id) == deadline:
                task.claims[worker_id] = deadline + stalled
        # The same shift for every entry keeps the heap ordered.
        self._leases = [(deadline + stalled, task_id, worker) for deadline, task_id, worker in self._leases]
        for session in self._sessions:
            session.held = {task_id: deadline + stalled for task_id, deadline in session.held.items()}
            session.last_seen += stalled

    def _reap(self) -> None:
        """Frees slots whose lease ran out and closes sessions that went silent."""
        now = time.time()
        freed = False
        retry_at = now + self.settings.lease_seconds
        while self._leases and self._leases[0][0] <= now:
            deadline, task_id, worker_id = heapq.heappop(self._leases)
            task = self._tasks.get(task_id)
            if task is None or task.claims.get(worker_id) != deadline:
                continue  # labeled, skipped or released already
            if task.expire(worker_id, retry_at):
                self._touch(task)  # back to pending
            self._make_available(task)
            for session in self._sessions:
                if session.worker_id == worker_id and session.held.pop(task_id, None) is not None:
                    session.outbox.error(task_id, Refusal.LEASE_EXPIRED)
            freed = True
        idle_before = time.monotonic() - self.settings.idle_timeout
        for session in [s for s in self._sessions if s.last_seen < idle_before]:
            log.info("worker went silent", extra={"worker_id": session.worker_id})
            self.disconnect(session)
        if freed:
            self._fill_all()


@dataclass(slots=True)
class _Flight:
    """A flush whose store write runs off the loop: what to ack or put back when it ends."""

    future: concurrent.futures.Future[set[str]]
    batch: LabelingBatch
    acks: list[tuple[Session, str]]
    touched: dict[str, OpenTask]
    decisions: list[int]


def _copy(task: OpenTask) -> OpenTask:
    """The task as it is now, for a write on another thread while the loop changes the live one."""
    return dataclasses.replace(
        task,
        labels=dict(task.labels),
        claims=dict(task.claims),
        skipped=set(task.skipped),
        lapsed=dict(task.lapsed),
    )
