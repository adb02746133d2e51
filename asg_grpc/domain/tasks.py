"""The task model and the rules of the submission field table (seed 004, docs/api.md)."""

from __future__ import annotations

import enum
import hashlib
import json
import unicodedata
from dataclasses import dataclass

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.urls import call_url_rule, parse_call_url, parse_url

TASK_TYPES = ("image_classification", "text_classification", "sentiment", "moderation")
DEFAULT_THRESHOLD = 3
MIN_THRESHOLD = 2
MAX_THRESHOLD = 10
MAX_BATCH = 1000
MAX_URL = 2048
MAX_QUESTION = 1000
MAX_OPTIONS = 50
MAX_OPTION = 200
MAX_IDEMPOTENCY_KEY = 255
# A task deadline: at most 30 days, so nothing waits on a labeler for longer than a month.
MAX_EXPIRES_IN = 30 * 24 * 3600
# Consensus methods (docs/quality.md): the published rule, or the worker-aware engine.
CONSENSUS_METHODS = ("majority", "adaptive")
DEFAULT_CONSENSUS_METHOD = "majority"
DEFAULT_TARGET_CONFIDENCE = 0.95
MIN_TARGET_CONFIDENCE = 0.5
MAX_TARGET_CONFIDENCE = 0.999
DEFAULT_MAX_LABELS = 10
# A task's labels are each billed: 50 caps what one task can cost at 5x the largest threshold.
MAX_MAX_LABELS = 50
# Who may label a task (docs/api.md, `labor`): every worker of its type, or only the workers
# registered as challenge gateways (docs/challenge.md, "Opting in").
LABORS = ("any", "challenge")
DEFAULT_LABOR = "any"


class TaskStatus(enum.Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    VERIFIED = "verified"
    SETTLED = "settled"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by its customer while not decided
    EXPIRED = "expired"  # its deadline (`expires_in_seconds`) passed while not decided

    @property
    def decided(self) -> bool:
        """True once `GET …/result` answers 200: nothing will change its label any more."""
        return self not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)

    @property
    def ended(self) -> bool:
        """Stopped before consensus: the labels collected are billed and paid, nothing else."""
        return self in (TaskStatus.CANCELLED, TaskStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch's tasks counted by status: what `GET /v1/tasks/batch/{id}` and `asg tasks watch`
    show. Every status is a key, zeros included, so a reader never guesses a missing one."""

    batch_id: str
    by_status: dict[TaskStatus, int]
    created_at: float  # when its first task was stored

    @classmethod
    def of(cls, batch_id: str, counts: dict[str, int], created_at: float) -> BatchProgress:
        """From counts keyed by status value, as a store groups them."""
        return cls(batch_id, {s: counts.get(s.value, 0) for s in TaskStatus}, created_at)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def decided(self) -> int:
        return sum(n for status, n in self.by_status.items() if status.decided)


@dataclass(frozen=True, slots=True)
class TaskDraft:
    """A task as received, every field possibly missing (None)."""

    type: str | None = None
    data_url: str | None = None
    question: str | None = None
    options: tuple[str, ...] | None = None
    has_label_spec: bool = False
    consensus_threshold: int | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    expires_in_seconds: int | None = None
    consensus_method: str | None = None
    target_confidence: float | None = None
    max_labels: int | None = None
    gold_label: str | None = None
    labor: str | None = None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A validated task, defaults applied: what is stored and what is labeled."""

    task_type: str
    data_url: str
    question: str
    options: tuple[str, ...]
    consensus_threshold: int
    callback_url: str | None
    idempotency_key: str | None
    expires_in_seconds: int | None = None  # None: no deadline
    consensus_method: str = DEFAULT_CONSENSUS_METHOD
    target_confidence: float = DEFAULT_TARGET_CONFIDENCE
    max_labels: int = DEFAULT_MAX_LABELS
    # The known answer of a gold task: never shown to workers, returned to its owner only.
    gold_label: str | None = None
    labor: str = DEFAULT_LABOR

    @property
    def adaptive(self) -> bool:
        return self.consensus_method == "adaptive"

    def fingerprint(self) -> str:
        """Identifies the request body for idempotency: same key + other body is a conflict.

        JSON keeps field boundaries, so no two different bodies share an encoding."""
        body = [
            self.task_type,
            self.data_url,
            self.question,
            self.options,
            self.consensus_threshold,
            self.callback_url,
        ]
        if self.expires_in_seconds is not None:  # absent: the same fingerprints as before
            body.append(self.expires_in_seconds)
        quality = (self.consensus_method, self.target_confidence, self.max_labels, self.gold_label)
        if quality != (DEFAULT_CONSENSUS_METHOD, DEFAULT_TARGET_CONFIDENCE, DEFAULT_MAX_LABELS, None):
            body.append(list(quality))  # defaults: the same fingerprints as before
        if self.labor != DEFAULT_LABOR:
            body.append(["labor", self.labor])
        return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What consensus decided; `label` is None when the task failed."""

    label: str | None
    confidence: float
    worker_count: int
    agreement_count: int
    failure_reason: str | None
    decided_at: float


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a settled task was paid (seed 001's `settlement` object)."""

    bsv_txid: str
    total_cost_sats: int
    settled_at: float


@dataclass(frozen=True, slots=True)
class LabelRecord:
    worker_id: str
    option: str
    created_at: float


@dataclass(slots=True)
class Task:
    task_id: str
    customer_id: str
    status: TaskStatus
    spec: TaskSpec
    batch_id: str | None
    created_at: float
    updated_at: float
    verdict: Verdict | None = None
    settlement: Settlement | None = None
    expires_at: float | None = None


def check_https_url(field: str, value: str) -> None:
    if len(value) > MAX_URL:
        raise ValidationError(field, f"must be at most {MAX_URL} characters")
    if parse_url(value) is None:
        raise ValidationError(field, "must be an https URL")


def check_call_url(field: str, value: str, dev_mode: bool, what: str = "an https URL") -> None:
    """A URL the core will call: https, or in development mode http:// to loopback (urls.py)."""
    if len(value) > MAX_URL:
        raise ValidationError(field, f"must be at most {MAX_URL} characters")
    if parse_call_url(value, dev_mode) is None:
        raise ValidationError(field, call_url_rule(value, dev_mode, what))


def check_label_spec(question: str | None, options: tuple[str, ...] | None) -> None:
    if question is None or not question.strip():
        raise ValidationError("label_spec.question", "is required")
    if len(question) > MAX_QUESTION:
        raise ValidationError("label_spec.question", f"must be at most {MAX_QUESTION} characters")
    if options is None:
        raise ValidationError("label_spec.options", "is required")
    if len(options) < 2:
        raise ValidationError("label_spec.options", "must contain at least 2 entries")
    if len(options) > MAX_OPTIONS:
        raise ValidationError("label_spec.options", f"must contain at most {MAX_OPTIONS} entries")
    for i, option in enumerate(options):
        if not option.strip():
            raise ValidationError(f"label_spec.options[{i}]", "must be a non-empty string")
        if len(option) > MAX_OPTION:
            raise ValidationError(f"label_spec.options[{i}]", f"must be at most {MAX_OPTION} characters")
    # Options a labeler cannot tell apart (`é` precomposed or as `e` + combining accent, `a` and
    # `a `) are the same option: compared in NFC without surrounding whitespace.
    if len({unicodedata.normalize("NFC", option).strip() for option in options}) != len(options):
        raise ValidationError("label_spec.options", "must be distinct")


def check_consensus_method(method: str) -> str:
    """A task's or a customer's consensus method, refused naming the field unless known."""
    if method not in CONSENSUS_METHODS:
        raise ValidationError("consensus_method", f"must be one of {', '.join(CONSENSUS_METHODS)}")
    return method


def check_labor(labor: str) -> str:
    """A task's or a batch's `labor`, refused naming the field unless known."""
    if labor not in LABORS:
        raise ValidationError("labor", f"must be one of {', '.join(LABORS)}")
    return labor


def validate_task(
    draft: TaskDraft,
    default_callback_url: str | None = None,
    *,
    valid_specs: set[tuple[str | None, tuple[str, ...] | None]] | None = None,
    default_method: str = DEFAULT_CONSENSUS_METHOD,
    dev_mode: bool = False,
    default_labor: str = DEFAULT_LABOR,
) -> TaskSpec:
    """Apply seed 004's field table; the first broken rule raises, naming its field.

    `valid_specs` remembers label specs already found valid, so a batch whose tasks share one
    (the usual case) checks it once. `dev_mode` (Settings.dev_mode) lets callback_url be
    http:// to loopback.
    """
    if draft.type is None:
        raise ValidationError("type", "is required")
    if draft.type not in TASK_TYPES:
        raise ValidationError("type", f"must be one of {', '.join(TASK_TYPES)}")
    if draft.data_url is None:
        raise ValidationError("data_url", "is required")
    check_https_url("data_url", draft.data_url)
    if not draft.has_label_spec:
        raise ValidationError("label_spec", "is required")
    question, options = draft.question, draft.options
    if valid_specs is None or (question, options) not in valid_specs:
        check_label_spec(question, options)
        if valid_specs is not None:
            valid_specs.add((question, options))
    assert question is not None and options is not None  # checked above
    threshold = DEFAULT_THRESHOLD if draft.consensus_threshold is None else draft.consensus_threshold
    if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
        raise ValidationError(
            "consensus_threshold", f"must be an integer from {MIN_THRESHOLD} to {MAX_THRESHOLD}"
        )
    callback_url = draft.callback_url if draft.callback_url is not None else default_callback_url
    if callback_url is not None:
        check_call_url("callback_url", callback_url, dev_mode)
    key = draft.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError("idempotency_key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    expires_in = draft.expires_in_seconds
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValidationError("expires_in_seconds", f"must be an integer from 1 to {MAX_EXPIRES_IN}")
    method = check_consensus_method(
        draft.consensus_method if draft.consensus_method is not None else default_method
    )
    target = DEFAULT_TARGET_CONFIDENCE if draft.target_confidence is None else draft.target_confidence
    if not MIN_TARGET_CONFIDENCE <= target <= MAX_TARGET_CONFIDENCE:  # False for NaN too
        raise ValidationError(
            "target_confidence", f"must be a number from {MIN_TARGET_CONFIDENCE} to {MAX_TARGET_CONFIDENCE}"
        )
    most = DEFAULT_MAX_LABELS if draft.max_labels is None else draft.max_labels
    if not max(threshold, MIN_THRESHOLD) <= most <= MAX_MAX_LABELS:
        raise ValidationError(
            "max_labels", f"must be an integer from consensus_threshold ({threshold}) to {MAX_MAX_LABELS}"
        )
    gold = draft.gold_label
    if gold is not None and gold not in options:
        raise ValidationError("gold_label", "must be one of label_spec.options")
    labor = check_labor(draft.labor if draft.labor is not None else default_labor)
    return TaskSpec(
        task_type=draft.type,
        data_url=draft.data_url,
        question=question,
        options=options,
        consensus_threshold=threshold,
        callback_url=callback_url,
        idempotency_key=key,
        expires_in_seconds=expires_in,
        consensus_method=method,
        target_confidence=target,
        max_labels=most,
        gold_label=gold,
        labor=labor,
    )


def validate_batch(
    drafts: list[TaskDraft],
    callback_url: str | None,
    default_method: str = DEFAULT_CONSENSUS_METHOD,
    dev_mode: bool = False,
    labor: str | None = None,
) -> list[TaskSpec]:
    """Validate a whole batch before anything is stored; errors name `tasks[i].field`.
    `labor` (the batch's own) applies to its tasks that name none."""
    if not drafts:
        raise ValidationError("tasks", "must contain at least 1 task")
    if len(drafts) > MAX_BATCH:
        raise ValidationError("tasks", f"must contain at most {MAX_BATCH} tasks")
    if callback_url is not None:
        check_call_url("callback_url", callback_url, dev_mode)
    default_labor = DEFAULT_LABOR if labor is None else check_labor(labor)
    specs: list[TaskSpec] = []
    seen_keys: set[str] = set()
    valid_specs: set[tuple[str | None, tuple[str, ...] | None]] = set()
    for i, draft in enumerate(drafts):
        try:
            spec = validate_task(
                draft,
                callback_url,
                valid_specs=valid_specs,
                default_method=default_method,
                dev_mode=dev_mode,
                default_labor=default_labor,
            )
        except ValidationError as exc:
            raise exc.at(f"tasks[{i}].") from None
        if spec.idempotency_key is not None:
            if spec.idempotency_key in seen_keys:
                raise ValidationError(f"tasks[{i}].idempotency_key", "is repeated in this batch")
            seen_keys.add(spec.idempotency_key)
        specs.append(spec)
    return specs
