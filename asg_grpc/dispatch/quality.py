"""The adaptive consensus engine inside the dispatcher (docs/quality.md, "In the product").

One `AdaptiveEngine` per dispatching core, restored from the store's saved snapshot at start
and saved again by the dispatcher (at most every `save_interval`, at stop, at a reinstate). The
hot path (a label, an offer) only reads the engine's estimates; `refresh` (EM over the workers'
answers) runs in the dispatcher's background loop, its EM in a worker thread
(`refresh_off_loop`), when `due` (docs/quality.md, "When the engine re-estimates"). Tasks whose
labels reached the store after the last save are replayed into the engine when they load, so a
restart loses no label and changes no decision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from asg_grpc.dispatch.outbox import Notice
from asg_grpc.domain import consensus
from asg_grpc.domain.consensus_engine import ConsensusSpec, GiveUp, Verdict
from asg_grpc.domain.dawid_skene import SNAPSHOT_VERSION, AdaptiveEngine, WorkerReport
from asg_grpc.domain.errors import NotFound
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.worker_model import Family
from asg_grpc.store.areas import Dispatch

log = logging.getLogger("asg.quality")

# What a worker's agent is told when the engine keeps a task family from it (WorkNotice).
BANNED = (
    "your answers to tasks with the options {options} fell below the quality floor: you get none "
    "of them until an operator reinstates you (asg worker reinstate)"
)
FAMILY_CAPPED = (
    "you gave more than {cap:.0%} of the labels of tasks with the options {options}: they go "
    "to other workers until those catch up"
)


# Family fields a snapshot holds: all but the derived `logs` cache (AdaptiveEngine.snapshot).
_FAMILY_FIELDS = tuple(f.name for f in dataclasses.fields(Family) if f.name != "logs")


_VERDICT_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    names = _VERDICT_FIELDS.get(cls)
    if names is None:
        names = _VERDICT_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _verdict(verdict: Verdict) -> dict[str, Any]:
    """A final verdict as AdaptiveEngine.snapshot writes it: its kind and its fields."""
    return {"kind": type(verdict).__name__, **{f: getattr(verdict, f) for f in _fields(type(verdict))}}


def encode_snapshot(engine: AdaptiveEngine) -> bytes:
    """`engine.snapshot()` as JSON (version 2: worker statistics with the fold's sums, and the
    tasks of each family's window; the engine keeps no posterior state of decided tasks, and
    the filter below still leaves out any). `AdaptiveEngine.restore` reads it as it is.

    orjson writes the dataclasses itself instead of `dataclasses.asdict` copying each first:
    the save took ~29 µs per task the engine holds, ~1.5 µs this way (docs/benchmarks.md)."""
    book = engine.book
    families = {}
    for key, fam in engine.families.items():
        data = {name: getattr(fam, name) for name in _FAMILY_FIELDS}
        data["pairs"] = fam.pairs.counts
        families[key] = data
    final = book.final
    return orjson.dumps(
        {
            "method": "adaptive",
            "version": SNAPSHOT_VERSION,
            "params": engine.params,
            "book": {
                "specs": book.specs,
                "labels": book.labels,
                "final": {t: _verdict(v) for t, v in final.items()},
            },
            "families": families,
            "tasks": {t: s for t, s in engine.tasks.items() if t not in final},
        }
    )


@dataclass(frozen=True, slots=True)
class Cadence:
    """When the engine re-estimates (`Quality.due`, docs/quality.md "When the engine
    re-estimates"): at most every `interval` seconds, sooner in proportion while it holds fewer
    than `full_labels` labels (its sweep is that much cheaper, and a new crowd is learnt
    before it has cost many extra labels); then once its labels grew by `growth`, labeling
    paused, or the last refresh is `max_age` seconds old."""

    interval: float = 5.0
    growth: float = 0.5
    max_age: float = 60.0
    full_labels: int = 10_000
    # A refresh that changed little (`_settled`) doubles the growth the next one waits for, up
    # to this; one that changed something brings it back to `growth`.
    max_growth: float = 4.0
    # "Little": no ban or ring changed and no entry of a family's pooled confusion matrix or
    # class prior moved by more than this.
    settled_within: float = 0.005


class Quality:
    def __init__(self, store: Dispatch, cadence: Cadence | None = None) -> None:
        self._store = store
        self.engine = self._restore()
        self._specs: dict[str, ConsensusSpec] = {}  # by task_id: built once per loaded task
        self._keys: dict[str, str] = {}  # by task_id: its spec's family key (a join per call)
        # When a refresh is due (`due`): labels at the last refresh and at the last look.
        self.cadence = cadence or Cadence()
        self.growth = self.cadence.growth  # in force now: doubled while refreshes change little
        self._labels_at_refresh = self._labels_at_look = self._labels()
        self._refreshed_at = time.monotonic()

    def _restore(self) -> AdaptiveEngine:
        saved = self._store.consensus_state()
        if saved is None:
            return AdaptiveEngine()
        data: dict[str, Any] = orjson.loads(saved)
        return AdaptiveEngine.restore(data)

    def _labels(self) -> int:
        return sum(fam.labels for fam in self.engine.families.values())

    def adopt(self, task: OpenTask) -> None:
        """A task just loaded: open it in the engine (the first time), and replay the labels the
        engine has not seen (stored after its last save). A task the engine had already decided
        gets that decision again."""
        spec = self.spec(task)
        if not task.adaptive:
            return
        book = self.engine.book
        if task.task_id not in book.specs:
            self.engine.open(task.task_id, spec)
        final = book.final.get(task.task_id)
        if final is not None:
            task.judge(final)
            return
        if not task.labels:  # a new task, the common case: nothing to replay
            return
        seen = {worker for worker, _ in book.labels[task.task_id]}
        for worker, option in task.labels.items():
            if worker not in seen:
                verdict = self.engine.add_label(task.task_id, worker, option)
                task.judge(verdict)
                if task.closed:
                    return

    def spec(self, task: OpenTask) -> ConsensusSpec:
        spec = self._specs.get(task.task_id)
        if spec is None:
            spec = self._specs[task.task_id] = task.consensus_spec()
        return spec

    def forget(self, task: OpenTask) -> None:
        self._specs.pop(task.task_id, None)
        self._keys.pop(task.task_id, None)

    def eligible(self, worker_id: str, task: OpenTask) -> bool:
        """Whether the worker may be offered the task: a worker the engine banned for the
        task's family gets none of it, whichever method decides the task, nor one over the
        family's share cap (`AdaptiveEngine.eligible`'s two rules, read here from the family
        the task's key names, looked up once per task: this runs for every offer)."""
        families = self.engine.families
        if not families:
            return True  # nothing learnt yet: the common case with `majority` only
        key = self._keys.get(task.task_id)
        if key is None:
            key = self._keys[task.task_id] = self.spec(task).family_key
        family = families.get(key)
        if family is None:
            return True
        stats = family.workers.get(worker_id)
        if stats is not None and stats.banned:
            return False
        if family.labels < self.engine.params.share_min_labels:
            return True
        # Over the engine's family share cap. A cap the family's workers cannot meet (three
        # workers cannot each hold under 25 %) would leave nobody to serve: as for the customer
        # cap (dispatch/traffic.py), the cap in force is never below twice an equal share.
        return family.share.get(worker_id, 0) < self._family_cap(family) * family.labels

    def _family_cap(self, family: Family) -> float:
        return max(self.engine.params.share_cap, 2 / max(1, len(family.share)))

    def withheld(self, worker_id: str, task: OpenTask) -> Notice:
        """Why `eligible` refused the worker this task, for its agent: banned in the task's
        family, or holding too large a share of the family's labels (the engine's cap)."""
        spec = self.spec(task)
        family = self.engine.families.get(spec.family_key)
        stats = None if family is None else family.workers.get(worker_id)
        options = ", ".join(task.options)
        if stats is not None and stats.banned:
            return Notice("banned", BANNED.format(options=options), task.options)
        cap = self.engine.params.share_cap if family is None else self._family_cap(family)
        return Notice("capped", FAMILY_CAPPED.format(options=options, cap=cap), task.options)

    def close(self, task: OpenTask) -> consensus.Outcome:
        """No worker is left who could label the task: its final outcome. `adaptive`: the
        engine's leading option at its (lower) confidence, or give up when no label counts;
        `majority`: the published rule decided nothing, so the task fails (`no_consensus`)."""
        if task.adaptive:
            return task.judge(self.engine.close(task.task_id))
        return task.judge(GiveUp(len(task.labels)))

    def due(self) -> bool:
        """Whether to refresh now (the dispatcher asks ten times per `interval`): labels arrived
        since the last refresh, the last one is old enough (`Cadence`), and either the labels
        grew by `growth` (0.5: half as many again), or labeling paused (none since the previous
        look), or the last refresh is `max_age` seconds old. The EM sweeps every task the
        engine holds (~20 µs each), so refreshing on growth keeps its cost per label bounded
        instead of growing with the engine; a pause lets it catch up on everything."""
        cadence, labels = self.cadence, self._labels()
        new = labels - self._labels_at_refresh
        paused = labels == self._labels_at_look
        self._labels_at_look = labels
        age = time.monotonic() - self._refreshed_at
        if new <= 0 or age < cadence.interval * min(1.0, labels / cadence.full_labels):
            return False
        return new >= self.growth * self._labels_at_refresh or paused or age >= cadence.max_age

    def _refreshed(self) -> None:
        self._labels_at_refresh = self._labels_at_look = self._labels()
        self._refreshed_at = time.monotonic()

    def _estimates(self) -> list[tuple[list[float], set[str], dict[str, str]]]:
        """What a refresh changes that matters to decisions and offers, per family: its pooled
        confusion matrix and class prior (flattened), who is banned, the rings."""
        return [
            (
                [x for row in fam.pooled for x in row] + [*fam.log_prior],
                {w for w, stats in fam.workers.items() if stats.banned},
                dict(fam.rings),
            )
            for fam in self.engine.families.values()
        ]

    def _settled(self, before: list[tuple[list[float], set[str], dict[str, str]]]) -> None:
        """Adapt the growth the next refresh waits for to how much this one changed."""
        after = self._estimates()
        within = self.cadence.settled_within
        little = len(before) == len(after) and all(
            bans == bans2 and rings == rings2 and all(abs(x - y) <= within for x, y in zip(a, b, strict=True))
            for (a, bans, rings), (b, bans2, rings2) in zip(before, after, strict=True)
        )
        cadence = self.cadence
        self.growth = min(2 * self.growth, cadence.max_growth) if little else cadence.growth

    def refresh(self) -> None:
        before = self._estimates()
        self.engine.refresh()
        self._refreshed()
        self._settled(before)

    async def refresh_off_loop(self) -> None:
        """The refresh with its EM in a worker thread: the copies it works on are taken here,
        on the event loop, and its estimates adopted back here, so labels go on being judged
        (against the previous estimates) while it runs."""
        before = self._estimates()
        job = self.engine.prepare_refresh()
        self._refreshed()
        await asyncio.to_thread(job.run)
        self.engine.apply_refresh(job)
        self._settled(before)

    def report(self, worker: str | None = None) -> list[WorkerReport]:
        return self.engine.report(worker)

    def reinstate(self, worker: str, options: tuple[str, ...] | None) -> list[WorkerReport]:
        """Lift the worker's ban in the family of `options`, or in every family it is banned
        in; the worker's records afterwards."""
        mine = self.engine.report(worker)
        if not mine:
            raise NotFound(f"worker {worker} has no record in the consensus engine")
        chosen = [r for r in mine if (r.banned if options is None else r.options == options)]
        if options is not None and not chosen:
            raise NotFound(f"worker {worker} has no record in the family {', '.join(options)}")
        for r in chosen:
            self.engine.reinstate(worker, "\x1f".join(r.options))
        return self.engine.report(worker)

    def save(self, now: float) -> None:
        self._store.save_consensus_state(encode_snapshot(self.engine), now)
