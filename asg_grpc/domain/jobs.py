"""Batch jobs: the job request's rules, the manifest line format, and the job's states.

A job reads a JSONL manifest (one item a line) and creates one task per valid line, with the
job's label spec, type, threshold and callback_url unless the line overrides type or label_spec.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import (
    DEFAULT_LABOR,
    DEFAULT_THRESHOLD,
    MAX_IDEMPOTENCY_KEY,
    MAX_THRESHOLD,
    MAX_URL,
    MIN_THRESHOLD,
    TASK_TYPES,
    TaskSpec,
    check_call_url,
    check_https_url,
    check_label_spec,
    check_labor,
)
from asg_grpc.domain.urls import parse_url

DEFAULT_TASK_TYPE = "image_classification"
MAX_ERRORS_KEPT = 100  # invalid lines reported with their message; all are counted
ITEM_FIELDS = frozenset(("data_url", "type", "label_spec", "idempotency_key", "metadata"))
LABEL_SPEC_FIELDS = frozenset(("question", "options"))
MAX_CREDENTIAL = 1024

# s3://bucket/key: bucket names per the S3 rules (3-63 of a-z 0-9 . -), a non-empty key.
_S3_URL = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(\S.*)", re.ASCII)
# What botocore accepts as a region name.
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?", re.ASCII)


class JobStatus(enum.Enum):
    PENDING = "pending"
    INGESTING = "ingesting"
    LABELING = "labeling"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)  # never in a log line or a traceback
    region: str
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A CreateJob request as received, every field possibly missing (None)."""

    manifest_url: str | None = None
    question: str | None = None
    options: tuple[str, ...] | None = None
    has_label_spec: bool = False
    type: str | None = None
    consensus_threshold: int | None = None
    callback_url: str | None = None
    s3_credentials: S3Credentials | None = None
    labor: str | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A valid job: where the manifest is and what every task gets unless its line says."""

    manifest_url: str
    task_type: str
    question: str
    options: tuple[str, ...]
    consensus_threshold: int
    callback_url: str | None
    labor: str = DEFAULT_LABOR  # every task's (docs/api.md, "Who labels a task")

    @property
    def s3(self) -> S3Location | None:
        match = _S3_URL.fullmatch(self.manifest_url)
        return None if match is None else S3Location(match[1], match[2])


@dataclass(frozen=True, slots=True)
class ManifestItem:
    spec: TaskSpec
    # The line's `metadata` as JSON text, echoed verbatim in the export; None when absent.
    metadata: str | None


@dataclass(frozen=True, slots=True)
class JobCounts:
    lines: int = 0
    tasks_created: int = 0
    tasks_reused: int = 0
    invalid_lines: int = 0
    verified: int = 0
    settled: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0

    def with_ended(self, by_status: Mapping[str, int]) -> JobCounts:
        """These counts with the job's ended tasks, from their numbers by status."""
        return replace(self, **{s: by_status.get(s, 0) for s in _ENDED})


_ENDED = ("verified", "settled", "failed", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    customer_id: str
    status: JobStatus
    spec: JobSpec
    counts: JobCounts
    errors: tuple[tuple[int, str], ...]  # (line, message), the first MAX_ERRORS_KEPT
    failure_reason: str | None
    created_at: float
    updated_at: float
    completed_at: float | None


def validate_job(draft: JobDraft, dev_mode: bool = False) -> JobSpec:
    """The first broken rule raises, naming its field (as the task field table does).
    `dev_mode` (Settings.dev_mode) lets manifest_url and callback_url be http:// to loopback."""
    url = draft.manifest_url
    if url is None or not url:
        raise ValidationError("manifest_url", "is required")
    if len(url) > MAX_URL:
        raise ValidationError("manifest_url", f"must be at most {MAX_URL} characters")
    is_s3 = url.startswith("s3://")
    if is_s3:
        if _S3_URL.fullmatch(url) is None:
            raise ValidationError("manifest_url", "must be s3://bucket/key with a valid bucket name")
    elif url[:8].lower() == "https://":
        check_call_url("manifest_url", url, dev_mode)
    else:  # http:// to loopback in development mode, or refused
        check_call_url("manifest_url", url, dev_mode, "an s3://bucket/key or https:// URL")
    if not draft.has_label_spec:
        raise ValidationError("label_spec", "is required")
    check_label_spec(draft.question, draft.options)
    assert draft.question is not None and draft.options is not None  # checked above
    task_type = DEFAULT_TASK_TYPE if draft.type is None else draft.type
    if task_type not in TASK_TYPES:
        raise ValidationError("type", f"must be one of {', '.join(TASK_TYPES)}")
    threshold = DEFAULT_THRESHOLD if draft.consensus_threshold is None else draft.consensus_threshold
    if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
        raise ValidationError(
            "consensus_threshold", f"must be an integer from {MIN_THRESHOLD} to {MAX_THRESHOLD}"
        )
    if draft.callback_url is not None:
        check_call_url("callback_url", draft.callback_url, dev_mode)
    credentials = draft.s3_credentials
    if is_s3 and credentials is None:
        raise ValidationError("s3_credentials", "is required for an s3:// manifest_url")
    if not is_s3 and credentials is not None:
        raise ValidationError("manifest_url", _credentials_need_s3(url))
    if credentials is not None:
        _check_credentials(credentials)
    labor = DEFAULT_LABOR if draft.labor is None else check_labor(draft.labor)
    return JobSpec(url, task_type, draft.question, draft.options, threshold, draft.callback_url, labor)


# An https URL of an S3 bucket: virtual-hosted (bucket.s3[.region].amazonaws.com/key) or
# path-style (s3[.region].amazonaws.com/bucket/key).
_S3_HOSTED = re.compile(r"https://([a-z0-9][a-z0-9.\-]*)\.s3(?:[.\-][a-z0-9\-]+)?\.amazonaws\.com/(.+)", re.I)
_S3_PATH = re.compile(r"https://s3(?:[.\-][a-z0-9\-]+)?\.amazonaws\.com/([^/]+)/(.+)", re.I)
_ANY_HTTPS = re.compile(r"https://([^/:?#]+)(?::\d+)?/([^?#]+)", re.I)


def _credentials_need_s3(url: str) -> str:
    """The seed's jobs example sends `https://bucket/manifest.jsonl` with `s3_credentials`: the
    credentials say S3, the URL says a web server. Say which part to change, and to what."""
    rule = (
        "must be s3://bucket/key to be read with s3_credentials (an https:// manifest is fetched"
        " without credentials: then leave s3_credentials out)"
    )
    for pattern in (_S3_HOSTED, _S3_PATH, _ANY_HTTPS):
        match = pattern.fullmatch(url)
        if match is not None:
            suggestion = f"s3://{match[1].lower()}/{match[2]}"
            if len(suggestion) <= 120 and _S3_URL.fullmatch(suggestion):
                return f"{rule}; for this one: {suggestion}"
            break
    return rule


def _check_credentials(c: S3Credentials) -> None:
    for name in ("access_key_id", "secret_access_key", "region"):
        value = getattr(c, name)
        if not value:
            raise ValidationError(f"s3_credentials.{name}", "is required")
        if len(value) > MAX_CREDENTIAL:
            raise ValidationError(f"s3_credentials.{name}", f"must be at most {MAX_CREDENTIAL} characters")
    if not _REGION.fullmatch(c.region):
        raise ValidationError("s3_credentials.region", "must be a region name such as us-east-1")
    if c.endpoint_url is not None and (
        len(c.endpoint_url) > MAX_URL or parse_url(c.endpoint_url, ("http", "https")) is None
    ):
        raise ValidationError("s3_credentials.endpoint_url", "must be an http:// or https:// URL")


def parse_item(line: bytes, job: JobSpec) -> ManifestItem:
    """One manifest line → the task it asks for; ValidationError names the field at fault."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ValidationError("line", "is not valid JSON") from None
    if type(obj) is not dict:
        raise ValidationError("line", "must be a JSON object")
    if not obj.keys() <= ITEM_FIELDS:
        unknown = next(k for k in obj if k not in ITEM_FIELDS)
        raise ValidationError(unknown, "is not a known field")
    data_url = _string(obj, "data_url")
    if data_url is None:
        raise ValidationError("data_url", "is required")
    check_https_url("data_url", data_url)
    task_type = _string(obj, "type")
    if task_type is None:
        task_type = job.task_type
    elif task_type not in TASK_TYPES:
        raise ValidationError("type", f"must be one of {', '.join(TASK_TYPES)}")
    question, options = job.question, job.options
    if "label_spec" in obj:
        question, options = _label_spec(obj["label_spec"])
    key = _string(obj, "idempotency_key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError("idempotency_key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    metadata = obj.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        raise ValidationError("metadata", "must be a JSON object")
    return ManifestItem(
        TaskSpec(
            task_type=task_type,
            data_url=data_url,
            question=question,
            options=options,
            consensus_threshold=job.consensus_threshold,
            callback_url=job.callback_url,
            idempotency_key=key,
            labor=job.labor,
        ),
        None if metadata is None else orjson.dumps(metadata).decode(),
    )


def _string(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or type(value) is str:
        return value
    raise ValidationError(name, "must be a string")


def _label_spec(value: object) -> tuple[str, tuple[str, ...]]:
    if type(value) is not dict:
        raise ValidationError("label_spec", "must be a JSON object")
    if not value.keys() <= LABEL_SPEC_FIELDS:
        unknown = next(k for k in value if k not in LABEL_SPEC_FIELDS)
        raise ValidationError(f"label_spec.{unknown}", "is not a known field")
    question = value.get("question")
    if question is not None and type(question) is not str:
        raise ValidationError("label_spec.question", "must be a string")
    raw = value.get("options")
    if raw is not None and (type(raw) is not list or not all(type(o) is str for o in raw)):
        raise ValidationError("label_spec.options", "must be an array of strings")
    options = None if raw is None else tuple(raw)
    check_label_spec(question, options)
    assert question is not None and options is not None
    return question, options
