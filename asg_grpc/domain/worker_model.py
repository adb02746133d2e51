"""What `adaptive` knows about workers, and the EM refresh that re-estimates it.

Plain dataclasses (a snapshot is `asdict` of them) and pure functions. `refresh_family` is the
off-path step: warm-started Dawid-Skene EM over the family's window of tasks (every open task
and the `window` most recently opened closed ones), then the defences that read its result
(label-switching guard, spammer floor, collusion rings, calibration).

The fold: a closed task that leaves the window leaves its evidence behind. Its labels' soft and
held-out counts (against the posterior of the sweep that folds it), its class posterior and its
against-the-rest tally are added to per-worker and per-family sums (`WorkerStats.folded`,
`folded_held`, `Family.folded_classes`, `Family.rest`) that every later M-step starts from.
So a refresh sweeps the window, not every task ever seen, and the estimates still rest on all
of it; what is lost is only that a folded task's posterior is no longer revised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from asg_grpc.domain.calibration import PlattCalibrator
from asg_grpc.domain.collusion import PairTally
from asg_grpc.domain.consensus_engine import TaskBook

Matrix = list[list[float]]


@dataclass(frozen=True, slots=True)
class AdaptiveParams:
    """Generic defaults, not fitted to any dataset: a worker is a priori as good as the family's
    pooled matrix, worth 2 labels per row (the pooled matrix itself starts at 70 % right, worth
    10); 2 warm-started EM sweeps per refresh; bans need 10 labels of evidence; a class is never
    believed rarer than 10 % of uniform."""

    prior_accuracy: float = 0.7
    prior_strength: float = 2.0
    pooled_strength: float = 10.0
    em_iterations: int = 2
    class_floor: float = 0.1
    spammer_floor: float = 0.15
    floor_labels: float = 10.0
    share_cap: float = 0.25
    share_min_labels: int = 200
    # Closed tasks per family the EM re-reads besides the open ones; older ones are folded into
    # the workers' statistics (module docstring). Bounds each sweep and each snapshot.
    window: int = 2000
    # Gold samples (raw posterior, right?) the Platt map is refitted on: the most recent ones.
    calibration_samples: int = 5000


@dataclass(slots=True)
class WorkerStats:
    """EM soft counts, gold counts and held-out counts (for the spammer floor); rows: truth,
    columns: the worker's label. `folded` and `folded_held` are the soft and held-out counts of
    the worker's labels on tasks folded out of the window (included in `soft` and `held_out`,
    which each M-step starts from them); empty means none yet."""

    soft: Matrix
    gold: Matrix
    held_out: Matrix
    banned: bool = False
    folded: Matrix = field(default_factory=list)
    folded_held: Matrix = field(default_factory=list)


@dataclass(slots=True)
class Family:
    options: list[str]
    log_prior: list[float]
    pooled: Matrix
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    rings: dict[str, str] = field(default_factory=dict)
    reinstated: list[str] = field(default_factory=list)
    samples: list[tuple[float, bool]] = field(default_factory=list)
    share: dict[str, int] = field(default_factory=dict)
    labels: int = 0
    epoch: int = 0
    calib: PlattCalibrator = field(default_factory=PlattCalibrator)
    pairs: PairTally = field(default_factory=PairTally)
    # The fold (module docstring): class posteriors summed over folded tasks, each worker's
    # against-the-rest tally [judged, agreed] on them, and how many tasks were folded.
    folded_classes: list[float] = field(default_factory=list)
    rest: dict[str, list[int]] = field(default_factory=dict)
    folded_tasks: int = 0
    logs: dict[str, Matrix] = field(default_factory=dict)  # derived cache, not snapshotted


@dataclass(slots=True)
class TaskState:
    log_post: list[float]
    epoch: int
    counted: list[str] = field(default_factory=list)  # worker or ring ids that counted


def zeros(k: int) -> Matrix:
    return [[0.0] * k for _ in range(k)]


def base_confusion(k: int, accuracy: float) -> Matrix:
    off = (1 - accuracy) / (k - 1)
    return [[accuracy if c == j else off for j in range(k)] for c in range(k)]


def normalise(row: list[float]) -> list[float]:
    s = sum(row)
    return [x / s for x in row]


def softmax(logs: list[float]) -> list[float]:
    m = max(logs)
    return normalise([math.exp(x - m) for x in logs])


def log_confusion(pooled: Matrix, stats: WorkerStats, strength: float) -> Matrix:
    """Log of the posterior-mean confusion matrix (rows: truth, columns: label): the family's
    pooled matrix worth `strength` labels, plus the worker's soft (EM) and gold counts."""
    table = []
    for prow, srow, grow in zip(pooled, stats.soft, stats.gold, strict=True):
        row = [strength * p + s + g for p, s, g in zip(prow, srow, grow, strict=True)]
        total = math.log(sum(row))
        table.append([math.log(x) - total for x in row])
    return table


def informativeness(table: Matrix) -> float:
    """Largest total-variation distance between two rows: 0 for a worker whose label does not
    depend on the truth (a spammer), high for good and for consistently wrong workers alike."""
    probs = [[math.exp(x) for x in row] for row in table]
    return max(
        0.5 * sum(abs(x - y) for x, y in zip(a, b, strict=True))
        for i, a in enumerate(probs)
        for b in probs[i + 1 :]
    )


@dataclass(slots=True)
class _Item:
    counted: list[tuple[str, int]]
    labels: list[tuple[str, int]]
    gold: int | None
    counted_set: frozenset[tuple[str, int]] = frozenset()
    folding: bool = False  # leaves the window at this refresh (its evidence is folded)


def _items(fam: Family, book: TaskBook, fold: frozenset[str]) -> list[_Item]:
    index = {o: i for i, o in enumerate(fam.options)}
    items = []
    for task_id in fam.tasks:
        labels = [(w, index[lab]) for w, lab in book.labels[task_id]]
        if not labels:
            continue
        seen: set[str] = set()
        counted = []
        for w, j in labels:
            ident = fam.rings.get(w, w)
            if fam.workers[w].banned or ident in seen:
                continue
            seen.add(ident)
            counted.append((w, j))
        gold = book.specs[task_id].gold
        items.append(
            _Item(
                counted,
                labels,
                None if gold is None else index[gold],
                frozenset(counted),
                task_id in fold,
            )
        )
    return items


def refresh_family(
    fam: Family, params: AdaptiveParams, book: TaskBook, fold: frozenset[str] = frozenset()
) -> list[str]:
    """EM (E: task posteriors from counted labels; M: every label's soft counts, banned and
    ring duplicates included so their estimates stay honest), then the defences. The closed
    tasks in `fold` have their evidence folded into the statistics and are dropped from
    `fam.tasks`; returns them (none when the EM result was rejected: they wait for the next)."""
    k = len(fam.options)
    _ensure_folded(fam)
    items = _items(fam, book, fold)
    folded: list[str] = []
    if items:
        kept = _em(fam, params, items, k)
        _ban_spammers(fam, params)
        fam.rings = fam.pairs.rings(_accuracy_against_rest(items, k, fam.rest, kept), k)
        if kept and fold:
            folded = [t for t in fam.tasks if t in fold]
            fam.tasks = [t for t in fam.tasks if t not in fold]
            fam.folded_tasks += len(folded)
    fam.calib.fit(fam.samples)
    fam.logs.clear()
    fam.epoch += 1
    return folded


def _ensure_folded(fam: Family) -> None:
    """Zero fold sums where there are none yet (a new worker, a snapshot from before the fold)."""
    k = len(fam.options)
    if not fam.folded_classes:
        fam.folded_classes = [0.0] * k
    for stats in fam.workers.values():
        if not stats.folded:
            stats.folded = zeros(k)
        if not stats.folded_held:
            stats.folded_held = zeros(k)


def _em(fam: Family, params: AdaptiveParams, items: list[_Item], k: int) -> bool:
    """The sweeps; False when the result was rejected (label switching) and nothing changed.
    Each M-step starts from the fold's sums; in the last sweep the folding items' share is
    added to them too (kept only when the result is)."""
    soft = {w: [list(r) for r in s.soft] for w, s in fam.workers.items()}
    held = {w: s.held_out for w, s in fam.workers.items()}
    pooled, log_prior = fam.pooled, fam.log_prior
    base = base_confusion(k, params.prior_accuracy)
    fold_soft = {w: _copy(s.folded) for w, s in fam.workers.items()}
    fold_held = {w: _copy(s.folded_held) for w, s in fam.workers.items()}
    fold_classes = list(fam.folded_classes)
    for sweep in range(params.em_iterations):
        logs = {
            w: log_confusion(pooled, WorkerStats(soft[w], s.gold, s.held_out), params.prior_strength)
            for w, s in fam.workers.items()
        }
        last = sweep == params.em_iterations - 1
        soft = {w: _copy(s.folded) for w, s in fam.workers.items()}
        classes = [1.0 + x for x in fam.folded_classes]
        if last:
            held = {w: _copy(s.folded_held) for w, s in fam.workers.items()}
        for item in items:
            if item.gold is not None:
                post = [1.0 if c == item.gold else 0.0 for c in range(k)]
            else:
                lp = list(log_prior)
                for w, j in item.counted:
                    table = logs[w]
                    lp = [x + table[c][j] for c, x in enumerate(lp)]
                post = softmax(lp)
                folding = last and item.folding
                for w, j in item.labels:
                    _add(soft[w], j, post)
                    if last:  # held out: the posterior without this worker's own label
                        if (w, j) in item.counted_set:
                            table = logs[w]
                            out = softmax([x - table[c][j] for c, x in enumerate(lp)])
                        else:  # a label that did not count (banned, a ring's copy)
                            out = post
                        _add(held[w], j, out)
                        if folding:
                            _add(fold_soft[w], j, post)
                            _add(fold_held[w], j, out)
            classes = [x + p for x, p in zip(classes, post, strict=True)]
            if last and item.folding:
                fold_classes = [x + p for x, p in zip(fold_classes, post, strict=True)]
        pooled = _pooled(fam, soft, base, params.pooled_strength)
        floor = params.class_floor / k
        prior = [max(x, floor) for x in normalise(classes)]
        log_prior = [math.log(p) for p in normalise(prior)]
    if not _beats_chance(pooled, log_prior):
        return False  # label switching: the camps swapped; keep the previous estimates
    for w, stats in fam.workers.items():
        stats.soft, stats.held_out = soft[w], held[w]
        stats.folded, stats.folded_held = fold_soft[w], fold_held[w]
    fam.pooled, fam.log_prior = pooled, log_prior
    fam.folded_classes = fold_classes
    return True


def _copy(m: Matrix) -> Matrix:
    return [list(r) for r in m]


def _add(counts: Matrix, label: int, post: list[float]) -> None:
    for c, p in enumerate(post):
        counts[c][label] += p


def _pooled(fam: Family, soft: dict[str, Matrix], base: Matrix, strength: float) -> Matrix:
    k = len(base)
    rows = [[strength * base[c][j] for j in range(k)] for c in range(k)]
    for w, stats in fam.workers.items():
        for c in range(k):
            for j in range(k):
                rows[c][j] += soft[w][c][j] + stats.gold[c][j]
    return [normalise(r) for r in rows]


def _beats_chance(pooled: Matrix, log_prior: list[float]) -> bool:
    """On average a label is more often the truth than any one wrong option."""
    prior = [math.exp(x) for x in log_prior]
    right = sum(p * pooled[c][c] for c, p in enumerate(prior))
    wrong = sum(p * max(x for j, x in enumerate(pooled[c]) if j != c) for c, p in enumerate(prior))
    return right > wrong


def _ban_spammers(fam: Family, params: AdaptiveParams) -> None:
    """Judged on `held_out` counts — each label against the posterior of the *other* labels —
    since on tasks of 2–3 labels a worker's own label sways the posterior it is measured by and
    a spammer would look informative. Re-judged at every refresh, so a ban that early
    estimates got wrong lifts itself; an operator's `reinstate` is never overridden."""
    for w, stats in fam.workers.items():
        evidence = sum(map(sum, stats.held_out)) + sum(map(sum, stats.gold))
        if w in fam.reinstated or evidence < params.floor_labels:
            stats.banned = False
            continue
        held = WorkerStats(stats.held_out, stats.gold, stats.held_out)
        table = log_confusion(fam.pooled, held, params.prior_strength)
        stats.banned = informativeness(table) < params.spammer_floor


def _accuracy_against_rest(
    items: list[_Item], k: int, folded: dict[str, list[int]], fold: bool
) -> dict[str, float]:
    """Each worker's agreement with gold, or with the strict plurality of the other labels on
    a task with at least two others (Laplace-smoothed; ≥ 5 tasks to be judged), over the
    window and the `folded` tally; with `fold`, the folding items are added to that tally."""
    tally = {w: list(t) for w, t in folded.items()}
    for item in items:
        counts = [0] * k
        for _, j in item.labels:
            counts[j] += 1
        for w, j in item.labels:
            if item.gold is not None:
                ref: int | None = item.gold
            elif len(item.labels) >= 3:
                others = list(counts)
                others[j] -= 1
                top = max(others)
                ref = others.index(top) if others.count(top) == 1 else None
            else:
                ref = None
            if ref is not None:
                t = tally.setdefault(w, [0, 0])
                t[0] += 1
                t[1] += j == ref
                if fold and item.folding:
                    f = folded.setdefault(w, [0, 0])
                    f[0] += 1
                    f[1] += j == ref
    return {w: (a + 1) / (n + 2) for w, (n, a) in tally.items() if n >= 5}
