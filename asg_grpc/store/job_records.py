"""Records the job parts of the store take and hand out (see Store in base.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from asg_grpc.domain.jobs import Job, JobSpec, JobStatus, ManifestItem


@dataclass(frozen=True, slots=True)
class JobWork:
    """A job whose manifest is still to be read, and where reading stopped."""

    job_id: str
    customer_id: str
    status: JobStatus
    spec: JobSpec
    sealed_credentials: bytes | None = field(repr=False)
    lines: int  # lines committed so far; the next line is number lines + 1
    byte_offset: int  # where line lines + 1 starts in the manifest


@dataclass(frozen=True, slots=True)
class IngestChunk:
    """Consecutive manifest lines, committed together with the progress they make."""

    items: list[tuple[int, ManifestItem]]  # (line number, item), valid lines
    invalid: list[tuple[int, str]]  # (line number, message)
    lines_after: int  # the last line number this chunk covers
    offset_after: int  # where the line after it starts
    last: bool  # the manifest ends here


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    created: int
    reused: int
    # Set when the job stopped (failed) in this chunk, e.g. on quota; the reason is the job's.
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ExportRow:
    line: int
    task_id: str
    data_url: str
    metadata: str | None  # JSON text as the manifest gave it
    status: str
    consensus_label: str | None
    confidence: float | None
    worker_count: int | None
    agreement_count: int | None
    bsv_txid: str | None  # the payout transaction, once settled


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]  # summaries: no per-status task counts, no errors
    next_after: str | None  # pass back as `after_job_id`; None on the last page
