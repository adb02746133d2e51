"""`adaptive` consensus: online Dawid-Skene with a confusion matrix per worker and task family.

Hot path (`add_label`, a few µs): a task's log-posterior over its options is the family's log
class prior plus, for each counted label, the column of the labelling worker's log confusion
matrix (estimated from held-out counts: each of its labels against the other labels of the
task). The engine stops when the posterior of the leading option reaches the task's
`target_confidence`, with at least `min_labels` counted labels and at most `max_labels` bought;
the confidence it reports is that posterior calibrated on gold (`domain/calibration.py`). Only
finished gold tasks change worker estimates between refreshes (gold pins them).

`refresh` (off the request path: a background task calls it) runs warm-started EM over each
family's window of tasks (open ones and the `window` most recent closed ones; older closed
tasks are folded into the workers' statistics, `domain/worker_model.py`) and, from it,
re-derives everything the hot path reads. Defences:
- worker prior: Dirichlet rows centred on the family's pooled confusion matrix (empirical Bayes,
  itself smoothed toward `prior_accuracy`), so a new worker counts as an average one;
- class-prior runaway: the class prior comes from soft posteriors of all labelled tasks (not the
  engine's hard decisions), smoothed and floored at `class_floor / K`;
- label switching: an EM result whose pooled workers are at or below chance is rejected and
  the previous estimates kept (gold anchors the camps too);
- below-chance workers: their confusion matrix reads their label as evidence for the others;
- spammers: a worker with ≥ `floor_labels` of evidence whose confusion rows are all alike
  (max total-variation distance between rows < `spammer_floor`) is banned for the family — not
  served, labels weigh nothing — until `reinstate`;
- share cap: a worker holding more than `share_cap` of a family's labels (once it has
  `share_min_labels`) is not served until others catch up;
- collusion (`domain/collusion.py`): a ring's labels on a task count once.

Past decisions are final: `refresh` re-reads open tasks only, and `restore(snapshot())` rebuilds
the same floats, so a restart changes nothing. The snapshot (`SNAPSHOT_VERSION` 2) holds the
worker statistics, the fold's sums and the window's tasks; `restore` also reads version 1
(no fold: every task in the window, the excess folded at the next refresh).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from asg_grpc.domain.calibration import PlattCalibrator
from asg_grpc.domain.collusion import PairTally, half
from asg_grpc.domain.consensus_engine import ConsensusSpec, Decision, GiveUp, NeedOne, TaskBook, Verdict
from asg_grpc.domain.errors import NotFound, ValidationError
from asg_grpc.domain.worker_model import (
    AdaptiveParams,
    Family,
    Matrix,
    TaskState,
    WorkerStats,
    base_confusion,
    log_confusion,
    refresh_family,
    softmax,
    zeros,
)

SNAPSHOT_VERSION = 2
NEED_ONE = NeedOne()  # one instance: the hot path's most common answer


@dataclass(slots=True)
class RefreshJob:
    """One refresh computed on copies (`AdaptiveEngine.prepare_refresh`): `run` touches only
    them, so it may run in a worker thread; `AdaptiveEngine.apply_refresh` adopts the result."""

    params: AdaptiveParams
    families: dict[str, Family]
    book: TaskBook
    fold: dict[str, frozenset[str]]  # by family: the closed tasks that leave the window
    folded: dict[str, list[str]] | None = None  # by family: those actually folded (`run`)

    def run(self) -> RefreshJob:
        self.folded = {
            key: refresh_family(fam, self.params, self.book, self.fold.get(key, frozenset()))
            for key, fam in self.families.items()
        }
        return self


def _matrix(m: Matrix) -> Matrix:
    return [list(r) for r in m]


def _clone(fam: Family) -> Family:
    """A copy of a family deep enough that the EM on it never shares a list that either side
    changes in place (the derived `logs` cache is left out: the EM rebuilds what it needs).
    A worker's soft, held-out and folded counts are shared, not copied: nothing changes them
    in place (the EM builds new ones, `apply_refresh` swaps them in); its gold counts, which
    a finished gold task increments on the hot path, are copied."""
    pairs = PairTally()
    pairs.counts = {key: list(c) for key, c in fam.pairs.counts.items()}
    return Family(
        options=list(fam.options),
        log_prior=list(fam.log_prior),
        pooled=_matrix(fam.pooled),
        workers={
            w: WorkerStats(s.soft, _matrix(s.gold), s.held_out, s.banned, s.folded, s.folded_held)
            for w, s in fam.workers.items()
        },
        tasks=list(fam.tasks),
        rings=dict(fam.rings),
        reinstated=list(fam.reinstated),
        samples=list(fam.samples),
        share=dict(fam.share),
        labels=fam.labels,
        epoch=fam.epoch,
        calib=replace(fam.calib),
        pairs=pairs,
        folded_classes=list(fam.folded_classes),
        rest={w: list(t) for w, t in fam.rest.items()},
        folded_tasks=fam.folded_tasks,
    )


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One worker in one family, as `asg worker list/show` prints it."""

    worker: str
    options: tuple[str, ...]
    banned: bool
    reinstated: bool
    labels: int
    gold_labels: int
    gold_correct: int
    estimated_accuracy: float


class AdaptiveEngine:
    def __init__(self, params: AdaptiveParams | None = None, book: TaskBook | None = None) -> None:
        self.params = params or AdaptiveParams()
        self.book = book or TaskBook()
        self.families: dict[str, Family] = {}
        self.tasks: dict[str, TaskState] = {}
        # Open task → its family (the spec's key is a join of its options: once per task, not
        # per label). A cache, not snapshotted: `_family_of` fills it after a restore.
        self._of: dict[str, Family] = {}

    # -- the hot path ------------------------------------------------------------------------

    def open(self, task_id: str, spec: ConsensusSpec) -> None:
        self.book.open(task_id, spec)
        fam = self._of[task_id] = self._family(spec)
        fam.tasks.append(task_id)
        self.tasks[task_id] = TaskState(list(fam.log_prior), fam.epoch)

    def eligible(self, worker: str, spec: ConsensusSpec) -> bool:
        fam = self.families.get(spec.family_key)
        if fam is None:
            return True
        stats = fam.workers.get(worker)
        if stats is not None and stats.banned:
            return False
        p = self.params
        return fam.labels < p.share_min_labels or fam.share.get(worker, 0) < p.share_cap * fam.labels

    def add_label(self, task_id: str, worker: str, label: str) -> Verdict:
        spec = self.book.add(task_id, worker, label)
        fam = self._of.get(task_id) or self._family_of(task_id, spec)
        labels = self.book.labels[task_id]
        if len(labels) > 1:
            fam.pairs.add(worker, label, labels[:-1], half(task_id))
        fam.labels += 1
        share = fam.share
        share[worker] = share.get(worker, 0) + 1
        stats = fam.workers.get(worker) or self._stats(fam, worker)
        state = self.tasks[task_id]
        if state.epoch != fam.epoch:
            self._rebuild(fam, task_id, state)
        else:
            ident = fam.rings.get(worker, worker)
            if not stats.banned and ident not in state.counted:
                state.counted.append(ident)
                column = fam.logs.get(worker) or self._log(fam, worker)
                k = fam.options.index(label)
                state.log_post = [lp + column[c][k] for c, lp in enumerate(state.log_post)]
        verdict = self._judge(fam, spec, task_id, state, final=False)
        return verdict if verdict is NEED_ONE else self._settle(fam, spec, task_id, verdict)

    def close(self, task_id: str) -> Verdict:
        """No more labels will come: the leading option with its (lower) confidence and
        `reached_target=False`, or give up when no label counts (all banned)."""
        spec = self.book.spec(task_id)
        if task_id in self.book.final:
            return self.book.final[task_id]
        fam = self._of.get(task_id) or self._family_of(task_id, spec)
        state = self.tasks[task_id]
        if state.epoch != fam.epoch:
            self._rebuild(fam, task_id, state)
        return self._settle(fam, spec, task_id, self._judge(fam, spec, task_id, state, final=True))

    def _settle(self, fam: Family, spec: ConsensusSpec, task_id: str, verdict: Verdict) -> Verdict:
        """A finished gold task pins its workers' estimates; only when finished, so that while
        open it measures the engine without knowing its own answer (calibration samples)."""
        if spec.gold is not None and not isinstance(verdict, NeedOne):
            truth = fam.options.index(spec.gold)
            for worker, label in self.book.labels[task_id]:
                self._stats(fam, worker).gold[truth][fam.options.index(label)] += 1
                fam.logs.pop(worker, None)
        if not isinstance(verdict, NeedOne):
            self.tasks.pop(task_id, None)  # only open tasks are judged again
            self._of.pop(task_id, None)
        return self.book.settle(task_id, verdict)

    def reinstate(self, worker: str, family: str) -> None:
        """Operator override of a ban; the worker is not banned again by the spammer floor."""
        fam = self.families.get(family)
        if fam is None or worker not in fam.workers:
            raise NotFound(f"worker {worker} has no record in family {family!r}")
        if worker not in fam.reinstated:
            fam.reinstated.append(worker)
        self._stats(fam, worker).banned = False
        fam.epoch += 1

    def report(self, worker: str | None = None) -> list[WorkerReport]:
        """Each worker's standing per family (only `worker`'s when given), for operators."""
        out = []
        for fam in self.families.values():
            prior = [math.exp(x) for x in fam.log_prior]
            for w in sorted(fam.workers) if worker is None else [worker] * (worker in fam.workers):
                stats = fam.workers[w]
                table = self._log(fam, w)
                accuracy = sum(p * math.exp(table[c][c]) for c, p in enumerate(prior)) / sum(prior)
                gold = stats.gold
                out.append(
                    WorkerReport(
                        worker=w,
                        options=tuple(fam.options),
                        banned=stats.banned,
                        reinstated=w in fam.reinstated,
                        labels=fam.share.get(w, 0),
                        gold_labels=round(sum(map(sum, gold))),
                        gold_correct=round(sum(gold[c][c] for c in range(len(gold)))),
                        estimated_accuracy=accuracy,
                    )
                )
        return out

    def _judge(
        self, fam: Family, spec: ConsensusSpec, task_id: str, state: TaskState, final: bool
    ) -> Verdict:
        post = softmax(state.log_post)
        top = max(post)
        counted = len(state.counted)
        labels = self.book.labels[task_id]
        reached = counted >= spec.min_labels and top >= spec.target_confidence
        if not (reached or final or len(labels) >= spec.max_labels):
            return NEED_ONE
        lead = post.index(top)  # the first leading option, as max(range, key=post) gives
        confidence = fam.calib(top)
        if not counted:
            return GiveUp(len(labels))
        if spec.gold is not None:  # what the engine reports, measured where it reports it
            fam.samples.append((post[lead], fam.options[lead] == spec.gold))
        winner = fam.options[lead]
        agreeing = sum(lab == winner for _, lab in labels)
        return Decision(winner, len(labels), agreeing, confidence, reached)

    # -- estimates ---------------------------------------------------------------------------

    def _family(self, spec: ConsensusSpec) -> Family:
        key = spec.family_key
        fam = self.families.get(key)
        if fam is None:
            k = len(spec.options)
            base = base_confusion(k, self.params.prior_accuracy)
            fam = Family(list(spec.options), [-math.log(k)] * k, base, folded_classes=[0.0] * k)
            self.families[key] = fam
        elif fam.options != list(spec.options):
            raise ValidationError("options", f"differ from family {key!r}'s")
        return fam

    def _family_of(self, task_id: str, spec: ConsensusSpec) -> Family:
        fam = self._of[task_id] = self.families[spec.family_key]
        return fam

    def _stats(self, fam: Family, worker: str) -> WorkerStats:
        stats = fam.workers.get(worker)
        if stats is None:
            k = len(fam.options)
            stats = fam.workers[worker] = WorkerStats(zeros(k), zeros(k), zeros(k), False, zeros(k), zeros(k))
        return stats

    def _log(self, fam: Family, worker: str) -> Matrix:
        """Log of the posterior-mean confusion matrix (rows: truth, columns: label)."""
        table = fam.logs.get(worker)
        if table is None:
            stats = self._stats(fam, worker)
            held = WorkerStats(stats.held_out, stats.gold, stats.held_out)
            table = fam.logs[worker] = log_confusion(fam.pooled, held, self.params.prior_strength)
        return table

    def _rebuild(self, fam: Family, task_id: str, state: TaskState) -> None:
        state.log_post = list(fam.log_prior)
        state.counted = []
        for worker, label in self.book.labels[task_id]:
            ident = fam.rings.get(worker, worker)
            if self._stats(fam, worker).banned or ident in state.counted:
                continue
            state.counted.append(ident)
            column = self._log(fam, worker)
            k = fam.options.index(label)
            state.log_post = [lp + column[c][k] for c, lp in enumerate(state.log_post)]
        state.epoch = fam.epoch

    # -- refresh (off the request path) ------------------------------------------------------

    def refresh(self) -> None:
        """The whole background step at once (the benchmark, tests); a dispatcher runs the
        three parts itself so that the EM runs off its event loop."""
        self.apply_refresh(self.prepare_refresh().run())

    def prepare_refresh(self) -> RefreshJob:
        """Copies of what the EM reads (cheap: lists and small matrices), so `RefreshJob.run`
        may run in another thread while the hot path goes on changing the live engine."""
        book = TaskBook()
        families = {}
        fold = {}
        final = self.book.final
        for key, fam in self.families.items():
            families[key] = _clone(fam)
            for task_id in fam.tasks:
                book.specs[task_id] = self.book.specs[task_id]
                book.labels[task_id] = list(self.book.labels[task_id])
            closed = [t for t in fam.tasks if t in final]
            fold[key] = frozenset(closed[: max(0, len(closed) - self.params.window)])
        return RefreshJob(self.params, families, book, fold)

    def apply_refresh(self, job: RefreshJob) -> None:
        """Adopt the job's estimates (on the thread that owns the engine). What changed while
        it ran stays: gold counts and labels of the live engine, workers new since the copy
        (they keep the prior until the next refresh), and an operator's `reinstate`."""
        for key, done in job.families.items():
            fam = self.families[key]
            fam.pooled, fam.log_prior = done.pooled, done.log_prior
            for worker, stats in done.workers.items():
                live = fam.workers[worker]
                live.soft, live.held_out = stats.soft, stats.held_out
                live.folded, live.folded_held = stats.folded, stats.folded_held
                live.banned = stats.banned and worker not in fam.reinstated
            fam.rings = done.rings
            fam.calib = done.calib
            fam.folded_classes, fam.rest, fam.folded_tasks = done.folded_classes, done.rest, done.folded_tasks
            folded = (job.folded or {}).get(key)
            if folded:  # closed tasks get no labels, so the copy's were all there were
                gone = set(folded)
                fam.tasks = [t for t in fam.tasks if t not in gone]
                for task_id in folded:
                    self.book.forget(task_id)
            del fam.samples[: max(0, len(fam.samples) - self.params.calibration_samples)]
            fam.logs.clear()
            fam.epoch += 1  # every open task rebuilds its posterior from the new estimates

    # -- state -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        families = {}
        for key, fam in self.families.items():
            data = asdict(fam)
            data.pop("logs")
            data["pairs"] = {pair: list(c) for pair, c in fam.pairs.counts.items()}
            families[key] = data
        return {
            "method": "adaptive",
            "version": SNAPSHOT_VERSION,
            "params": asdict(self.params),
            "book": self.book.snapshot(),
            "families": families,
            "tasks": {t: asdict(s) for t, s in self.tasks.items()},
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> AdaptiveEngine:
        """Version 2 (`snapshot`) or 1 (before the fold: no fold sums, decided tasks' posterior
        state possibly included, which is dropped: only open tasks are judged again)."""
        engine = cls(AdaptiveParams(**data["params"]), TaskBook.restore(data["book"]))
        for key, f in data["families"].items():
            pairs = PairTally()
            pairs.counts = {k: list(v) for k, v in f["pairs"].items()}
            k = len(f["options"])
            engine.families[key] = Family(
                options=list(f["options"]),
                log_prior=list(f["log_prior"]),
                pooled=[list(r) for r in f["pooled"]],
                workers={w: _worker(s, k) for w, s in f["workers"].items()},
                tasks=list(f["tasks"]),
                rings=dict(f["rings"]),
                reinstated=list(f["reinstated"]),
                samples=[(r, bool(ok)) for r, ok in f["samples"]],
                share=dict(f["share"]),
                labels=f["labels"],
                epoch=f["epoch"],
                calib=PlattCalibrator(**f["calib"]),
                pairs=pairs,
                folded_classes=list(f.get("folded_classes") or [0.0] * k),
                rest={w: list(t) for w, t in f.get("rest", {}).items()},
                folded_tasks=f.get("folded_tasks", 0),
            )
        final = engine.book.final
        engine.tasks = {t: TaskState(**s) for t, s in data["tasks"].items() if t not in final}
        return engine


def _worker(s: dict[str, Any], k: int) -> WorkerStats:
    stats = WorkerStats(**s)
    stats.folded = stats.folded or zeros(k)
    stats.folded_held = stats.folded_held or zeros(k)
    return stats
