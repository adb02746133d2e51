"""The adaptive consensus engine inside the dispatcher (docs/quality.md, "In the product").

One `AdaptiveEngine` per dispatching core, restored from the store's saved snapshot at start
and saved again after every refresh and at stop. The hot path (a label, an offer) only reads
the engine's estimates; `refresh` (EM over the workers' answers) runs in the dispatcher's
background loop, its EM in a worker thread (`refresh_off_loop`). Tasks whose labels reached
the store after the last save are replayed into the engine when they load, so a restart loses
no label and changes no decision.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from asg_grpc.dispatch.outbox import Notice
from asg_grpc.domain import consensus
from asg_grpc.domain.consensus_engine import ConsensusSpec, GiveUp
from asg_grpc.domain.dawid_skene import AdaptiveEngine, WorkerReport
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


class Quality:
    def __init__(self, store: Dispatch) -> None:
        self._store = store
        self.engine = self._restore()
        self._specs: dict[str, ConsensusSpec] = {}  # by task_id: built once per loaded task
        self._labels_at_refresh = self._labels()

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

    def eligible(self, worker_id: str, task: OpenTask) -> bool:
        """Whether the worker may be offered the task: a worker the engine banned for the
        task's family gets none of it, whichever method decides the task."""
        if not self.engine.families:
            return True  # nothing learnt yet: the common case with `majority` only
        spec = self.spec(task)
        if self.engine.eligible(worker_id, spec):
            return True
        family = self.engine.families[spec.family_key]
        stats = family.workers.get(worker_id)
        if stats is not None and stats.banned:
            return False
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
        """Labels arrived since the last refresh."""
        return self._labels() != self._labels_at_refresh

    def refresh(self) -> None:
        self.engine.refresh()
        self._labels_at_refresh = self._labels()

    async def refresh_off_loop(self) -> None:
        """The refresh with its EM in a worker thread: the copies it works on are taken here,
        on the event loop, and its estimates adopted back here, so labels go on being judged
        (against the previous estimates) while it runs."""
        job = self.engine.prepare_refresh()
        self._labels_at_refresh = self._labels()
        await asyncio.to_thread(job.run)
        self.engine.apply_refresh(job)

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
        self._store.save_consensus_state(orjson.dumps(self.engine.snapshot()), now)
