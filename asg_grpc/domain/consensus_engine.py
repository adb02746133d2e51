"""The interface the dispatcher calls to decide a task, and the published rule behind it.

A label arrives → the engine answers with a `Verdict`: `Decision` (stop, this label wins),
`NeedOne` (serve one more worker) or `GiveUp` (stop without a label). `close` is called when a
task can get no more labels (no eligible worker left, deadline): it always returns a final
verdict. Two methods implement `ConsensusEngine`:

- `MajorityEngine` — the published rule of `domain/consensus.py`, unchanged (the default);
- `AdaptiveEngine` (`domain/dawid_skene.py`) — worker-aware, stops at a target confidence.

Both are pure: no clock, no I/O, no randomness; `snapshot()` is a JSON-safe dict and
`restore(snapshot)` rebuilds an engine that decides exactly as the original would have.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from asg_grpc.domain import consensus
from asg_grpc.domain.errors import Conflict, NotFound, ValidationError

DEFAULT_TARGET_CONFIDENCE = 0.95
DEFAULT_MAX_LABELS = 10


@dataclass(frozen=True, slots=True)
class ConsensusSpec:
    """What the engine needs of a task. `min_labels` is `consensus_threshold`: the published
    threshold for `majority`, the minimum number of labels for `adaptive`. `family` groups tasks
    whose workers' skills carry over (same question, same options); `gold` is the known answer
    of a gold task, never shown to workers."""

    options: tuple[str, ...]
    min_labels: int = 3
    max_labels: int = DEFAULT_MAX_LABELS
    target_confidence: float = DEFAULT_TARGET_CONFIDENCE
    family: str = ""
    gold: str | None = None

    def __post_init__(self) -> None:
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValidationError("options", "must be at least 2 distinct values")
        if not 2 <= self.min_labels <= self.max_labels:
            raise ValidationError("consensus_threshold", "must be ≥ 2 and ≤ max_labels")
        if not 0.5 <= self.target_confidence < 1:
            raise ValidationError("target_confidence", "must be in [0.5, 1)")
        if self.gold is not None and self.gold not in self.options:
            raise ValidationError("gold_label", "must be one of the options")

    @property
    def family_key(self) -> str:
        return self.family or "\x1f".join(self.options)


@dataclass(frozen=True, slots=True)
class Decision:
    """Final: `label` wins. `confidence` is agreement / labels for `majority` and the calibrated
    probability that `label` is right for `adaptive`; `reached_target` is False when the task
    stopped at `max_labels` or ran out of workers below its target."""

    label: str
    worker_count: int
    agreement_count: int
    confidence: float
    reached_target: bool = True


@dataclass(frozen=True, slots=True)
class NeedOne:
    """Serve the task to one more worker."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Final without a label (`no_consensus`)."""

    worker_count: int


Verdict = Decision | NeedOne | GiveUp


class ConsensusEngine(Protocol):
    def open(self, task_id: str, spec: ConsensusSpec) -> None: ...

    def add_label(self, task_id: str, worker: str, label: str) -> Verdict: ...

    def close(self, task_id: str) -> Verdict: ...

    def eligible(self, worker: str, spec: ConsensusSpec) -> bool: ...

    def refresh(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class TaskBook:
    """Open tasks and their labels, shared by both engines: the checks a dispatcher relies on
    (known task, one label per worker, a label among the options) written once."""

    def __init__(self) -> None:
        self.specs: dict[str, ConsensusSpec] = {}
        self.labels: dict[str, list[tuple[str, str]]] = {}
        self.final: dict[str, Verdict] = {}

    def open(self, task_id: str, spec: ConsensusSpec) -> None:
        if task_id in self.specs:
            raise Conflict(f"task {task_id} is already open")
        self.specs[task_id] = spec
        self.labels[task_id] = []

    def add(self, task_id: str, worker: str, label: str) -> ConsensusSpec:
        spec = self.spec(task_id)
        if task_id in self.final:
            raise Conflict(f"task {task_id} is already decided")
        if label not in spec.options:
            raise ValidationError("label", "must be one of the task's options")
        if any(w == worker for w, _ in self.labels[task_id]):
            raise Conflict(f"worker {worker} already labelled task {task_id}")
        self.labels[task_id].append((worker, label))
        return spec

    def spec(self, task_id: str) -> ConsensusSpec:
        try:
            return self.specs[task_id]
        except KeyError:
            raise NotFound(f"task {task_id} is not open") from None

    def forget(self, task_id: str) -> None:
        """A closed task the engine no longer needs (folded out of its window)."""
        self.specs.pop(task_id, None)
        self.labels.pop(task_id, None)
        self.final.pop(task_id, None)

    def settle(self, task_id: str, verdict: Verdict) -> Verdict:
        if not isinstance(verdict, NeedOne):
            self.final[task_id] = verdict
        return verdict

    def snapshot(self) -> dict[str, Any]:
        return {
            "specs": {t: asdict(s) for t, s in self.specs.items()},
            "labels": {t: [list(p) for p in ls] for t, ls in self.labels.items()},
            "final": {t: _verdict_dict(v) for t, v in self.final.items()},
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> TaskBook:
        book = cls()
        for t, s in data["specs"].items():
            book.specs[t] = ConsensusSpec(**{**s, "options": tuple(s["options"])})
        book.labels = {t: [(w, lab) for w, lab in ls] for t, ls in data["labels"].items()}
        book.final = {t: _verdict_from(v) for t, v in data["final"].items()}
        return book


def _verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"kind": type(v).__name__, **asdict(v)}


def _verdict_from(d: dict[str, Any]) -> Verdict:
    fields = {k: v for k, v in d.items() if k != "kind"}
    return Decision(**fields) if d["kind"] == "Decision" else GiveUp(**fields)


class MajorityEngine:
    """`domain/consensus.evaluate` behind the engine interface: threshold = `min_labels`,
    strict majority, at most twice the threshold (`spec.max_labels` does not apply: the
    published rule fixes the cap). Keeps no worker statistics."""

    def __init__(self, book: TaskBook | None = None) -> None:
        self.book = book or TaskBook()

    def open(self, task_id: str, spec: ConsensusSpec) -> None:
        self.book.open(task_id, spec)

    def add_label(self, task_id: str, worker: str, label: str) -> Verdict:
        spec = self.book.add(task_id, worker, label)
        outcome = consensus.evaluate((lab for _, lab in self.book.labels[task_id]), spec.min_labels)
        if isinstance(outcome, consensus.Decided):
            verdict: Verdict = Decision(
                outcome.label, outcome.worker_count, outcome.agreement_count, outcome.confidence
            )
        elif isinstance(outcome, consensus.NoConsensus):
            verdict = GiveUp(outcome.worker_count)
        else:
            verdict = NeedOne()
        return self.book.settle(task_id, verdict)

    def close(self, task_id: str) -> Verdict:
        """No more workers: the rule decides nothing it had not decided, so the task fails."""
        self.book.spec(task_id)
        final = self.book.final.get(task_id)
        return final or self.book.settle(task_id, GiveUp(len(self.book.labels[task_id])))

    def eligible(self, worker: str, spec: ConsensusSpec) -> bool:
        return True

    def refresh(self) -> None:
        """Nothing to learn: the published rule ignores who answered."""

    def snapshot(self) -> dict[str, Any]:
        return {"method": "majority", "book": self.book.snapshot()}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> MajorityEngine:
        return cls(TaskBook.restore(data["book"]))
