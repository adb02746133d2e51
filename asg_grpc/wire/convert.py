"""Domain values ⇄ protobuf messages. No rules here: only shapes."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from asg_grpc.domain import billing
from asg_grpc.domain.customers import ApiKey, Customer
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.jobs import Job, JobDraft, JobSpec, JobStatus, S3Credentials
from asg_grpc.domain.tasks import BatchProgress, LabelRecord, Task, TaskDraft, TaskSpec, TaskStatus
from asg_grpc.domain.tiers import Tier
from asg_grpc.domain.webhooks import Webhook
from asg_grpc.ledger.explorer import TaskReceipt, TxView
from asg_grpc.ledger.receipts import RECEIPT_VERSION
from asg_grpc.store.ledger_records import LedgerBlock
from asg_grpc.store.webhook_records import DeliveryRecord
from asg_grpc.v1 import billing_pb2, chain_pb2, common_pb2, jobs_pb2, tasks_pb2, webhooks_pb2

STATUS_TO_PB = {
    TaskStatus.PENDING: common_pb2.TASK_STATUS_PENDING,
    TaskStatus.IN_PROGRESS: common_pb2.TASK_STATUS_IN_PROGRESS,
    TaskStatus.VERIFIED: common_pb2.TASK_STATUS_VERIFIED,
    TaskStatus.SETTLED: common_pb2.TASK_STATUS_SETTLED,
    TaskStatus.FAILED: common_pb2.TASK_STATUS_FAILED,
    TaskStatus.CANCELLED: common_pb2.TASK_STATUS_CANCELLED,
    TaskStatus.EXPIRED: common_pb2.TASK_STATUS_EXPIRED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}


def timestamp(seconds: float) -> Timestamp:
    whole = int(seconds)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


M = TypeVar("M", bound=Message)
_SHARED_NAMES: dict[tuple[type, type], tuple[str, ...]] = {}


def _by_name(source: Any, message_type: type[M], **rest: Any) -> M:
    """A ``message_type`` carrying every field of ``source`` (a dataclass) that the message names
    alike, plus ``rest``: the fields renamed, converted (times) or from elsewhere.

    Records and messages name their fields alike on purpose (docs/wire.md), so a conversion
    says only what differs; a field left to the copy with the wrong type fails loudly."""
    key = (type(source), message_type)
    names = _SHARED_NAMES.get(key)
    if names is None:
        fields = message_type.DESCRIPTOR.fields_by_name
        names = tuple(f.name for f in dataclasses.fields(source) if f.name in fields)
        _SHARED_NAMES[key] = names
    return message_type(**{name: getattr(source, name) for name in names if name not in rest}, **rest)


DEFAULT_PAGE = 50
MAX_PAGE = 200


def page_limit(
    request: tasks_pb2.ListTasksRequest | webhooks_pb2.ListDeliveriesRequest | jobs_pb2.ListJobsRequest,
) -> int:
    """A list request's `limit`: DEFAULT_PAGE when unset, else 1..MAX_PAGE."""
    limit = request.limit if request.HasField("limit") else DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be from 1 to {MAX_PAGE}")
    return limit


def _present(msg: Message) -> dict[str, Any]:
    """The fields a request set, by name; one absent (proto3 ``optional``) is None to the domain.
    For requests read once per call (a job's); ``draft`` reads its fields itself, faster."""
    return {field.name: value for field, value in msg.ListFields()}


def _draft_spec(spec: common_pb2.LabelSpec | None) -> dict[str, Any]:
    """A draft's label-spec fields (tasks and jobs alike): whether one was sent, and its parts."""
    if spec is None:
        return {"has_label_spec": False, "question": None, "options": None}
    return {"has_label_spec": True, "question": spec.question, "options": tuple(spec.options)}


def label_spec(question: str, options: tuple[str, ...]) -> common_pb2.LabelSpec:
    return common_pb2.LabelSpec(question=question, options=options)


def _asked(spec: TaskSpec | JobSpec) -> dict[str, Any]:
    """What a task, or every task of a job, asks of the labelers: the fields Task and Job share."""
    return {
        "task_type": spec.task_type,
        "label_spec": label_spec(spec.question, spec.options),
        "consensus_threshold": spec.consensus_threshold,
        "callback_url": spec.callback_url,
    }


def draft(msg: tasks_pb2.TaskInput) -> TaskDraft:
    """Written out field by field (not ``_present``): this runs for every task of every batch,
    and a ``HasField`` per field is the cheapest read of a proto3 ``optional``."""
    has = msg.HasField
    spec = msg.label_spec if has("label_spec") else None
    return TaskDraft(
        type=msg.type if has("type") else None,
        data_url=msg.data_url if has("data_url") else None,
        has_label_spec=spec is not None,
        question=None if spec is None else spec.question,
        options=None if spec is None else tuple(spec.options),
        consensus_threshold=msg.consensus_threshold if has("consensus_threshold") else None,
        callback_url=msg.callback_url if has("callback_url") else None,
        idempotency_key=msg.idempotency_key if has("idempotency_key") else None,
        expires_in_seconds=msg.expires_in_seconds if has("expires_in_seconds") else None,
        consensus_method=msg.consensus_method if has("consensus_method") else None,
        target_confidence=msg.target_confidence if has("target_confidence") else None,
        max_labels=msg.max_labels if has("max_labels") else None,
        gold_label=msg.gold_label if has("gold_label") else None,
        labor=msg.labor if has("labor") else None,
    )


def task(t: Task) -> tasks_pb2.Task:
    spec = t.spec
    return tasks_pb2.Task(
        task_id=t.task_id,
        status=STATUS_TO_PB[t.status],
        **_asked(spec),
        data_url=spec.data_url,
        idempotency_key=spec.idempotency_key,
        batch_id=t.batch_id,
        created_at=timestamp(t.created_at),
        updated_at=timestamp(t.updated_at),
        expires_at=None if t.expires_at is None else timestamp(t.expires_at),
        consensus_method=spec.consensus_method,
        target_confidence=spec.target_confidence,
        max_labels=spec.max_labels,
        gold_label=spec.gold_label,  # reads are scoped to the owner; workers never get a Task
        labor=spec.labor,
    )


def batch_status(b: BatchProgress) -> tasks_pb2.BatchStatus:
    counts = tasks_pb2.BatchCounts(**{status.value: n for status, n in b.by_status.items()})
    return tasks_pb2.BatchStatus(
        batch_id=b.batch_id,
        total=b.total,
        counts=counts,
        decided=b.decided,
        created_at=timestamp(b.created_at),
    )


def task_result(t: Task, labels: list[LabelRecord]) -> tasks_pb2.TaskResult:
    result = tasks_pb2.TaskResult(
        task_id=t.task_id,
        status=STATUS_TO_PB[t.status],
        decided=t.status.decided,
        label_spec=label_spec(t.spec.question, t.spec.options),
        labels=[
            tasks_pb2.TaskLabel(worker_id=r.worker_id, option=r.option, created_at=timestamp(r.created_at))
            for r in labels
        ],
    )
    verdict = t.verdict
    if verdict is not None:
        if verdict.label is not None:
            result.consensus_label = verdict.label
        result.confidence = verdict.confidence
        result.worker_count = verdict.worker_count
        result.agreement_count = verdict.agreement_count
        if verdict.failure_reason is not None:
            result.failure_reason = verdict.failure_reason
        result.decided_at.CopyFrom(timestamp(verdict.decided_at))
    if t.settlement is not None:
        result.settlement.CopyFrom(
            tasks_pb2.Settlement(
                bsv_txid=t.settlement.bsv_txid,
                total_cost_sats=t.settlement.total_cost_sats,
                settled_at=timestamp(t.settlement.settled_at),
            )
        )
    return result


def prices(tier: Tier) -> billing_pb2.Prices:
    return billing_pb2.Prices(label_price_sats=tier.label_price_sats, task_price_sats=tier.task_price_sats)


def customer(c: Customer, tier: Tier, *, enforced: bool) -> billing_pb2.Customer:
    return _by_name(
        c,
        billing_pb2.Customer,
        created_at=timestamp(c.created_at),
        quota_remaining=c.quota_remaining,
        prices=prices(tier),
        rate_limit=billing_pb2.RateLimit(
            per_second=tier.rate_limit.per_second, burst=tier.rate_limit.burst, enforced=enforced
        ),
        consensus_method=c.consensus_method or "",
    )


def api_key(k: ApiKey) -> billing_pb2.ApiKey:
    message = billing_pb2.ApiKey(key_hint=k.key_hint, created_at=timestamp(k.created_at))
    if k.expires_at is not None:
        message.expires_at.CopyFrom(timestamp(k.expires_at))
    return message


def usage_line(line: billing.UsageLine) -> billing_pb2.UsageLine:
    return _by_name(line, billing_pb2.UsageLine)


def usage(u: billing.Usage) -> billing_pb2.Usage:
    return billing_pb2.Usage(
        month=str(u.month),
        tier=u.tier.name,
        prices=prices(u.tier),
        period_start=timestamp(u.month.start),
        period_end=timestamp(u.month.end),
        total=usage_line(u.total),
        by_type=[usage_line(line) for line in u.by_type],
    )


def invoice(i: billing.Invoice) -> billing_pb2.Invoice:
    return billing_pb2.Invoice(invoice_id=i.invoice_id, status=i.status, usage=usage(i.usage))


def webhook(w: Webhook) -> webhooks_pb2.Webhook:
    return _by_name(w, webhooks_pb2.Webhook, created_at=timestamp(w.created_at))


def delivery(d: DeliveryRecord) -> webhooks_pb2.Delivery:
    return _by_name(
        d,
        webhooks_pb2.Delivery,
        event=d.event_type,
        last_status_code=d.last_status or 0,
        last_error=d.last_error or "",
        next_attempt_at=None if d.next_attempt_at is None else timestamp(d.next_attempt_at),
        delivered_at=None if d.delivered_at is None else timestamp(d.delivered_at),
        created_at=timestamp(d.created_at),
    )


JOB_STATUS_TO_PB = {
    JobStatus.PENDING: jobs_pb2.JOB_STATUS_PENDING,
    JobStatus.INGESTING: jobs_pb2.JOB_STATUS_INGESTING,
    JobStatus.LABELING: jobs_pb2.JOB_STATUS_LABELING,
    JobStatus.COMPLETED: jobs_pb2.JOB_STATUS_COMPLETED,
    JobStatus.FAILED: jobs_pb2.JOB_STATUS_FAILED,
}


def job_draft(msg: jobs_pb2.CreateJobRequest) -> JobDraft:
    sent = _present(msg)
    credentials = None
    if "s3_credentials" in sent:
        c = msg.s3_credentials
        credentials = S3Credentials(
            access_key_id=c.access_key_id,
            secret_access_key=c.secret_access_key,
            region=c.region,
            endpoint_url=c.endpoint_url if c.HasField("endpoint_url") else None,
        )
    return JobDraft(
        manifest_url=sent.get("manifest_url"),
        **_draft_spec(sent.get("label_spec")),
        type=sent.get("type"),
        consensus_threshold=sent.get("consensus_threshold"),
        callback_url=sent.get("callback_url"),
        s3_credentials=credentials,
        labor=sent.get("labor"),
    )


def job(j: Job) -> jobs_pb2.Job:
    spec, counts = j.spec, j.counts
    return jobs_pb2.Job(
        job_id=j.job_id,
        status=JOB_STATUS_TO_PB[j.status],
        manifest_url=spec.manifest_url,
        **_asked(spec),
        counts=_by_name(counts, jobs_pb2.JobCounts),
        errors=[jobs_pb2.JobError(line=line, error=error) for line, error in j.errors],
        failure_reason=j.failure_reason,
        created_at=timestamp(j.created_at),
        updated_at=timestamp(j.updated_at),
        completed_at=None if j.completed_at is None else timestamp(j.completed_at),
        labor=spec.labor,
    )


def task_receipt(found: TaskReceipt) -> chain_pb2.TaskReceipt:
    receipt, settlement = found.receipt, found.settlement
    return chain_pb2.TaskReceipt(
        version=RECEIPT_VERSION,
        network=receipt.network,
        txid=receipt.txid,
        outputs=[
            chain_pb2.ReceiptOutput(vout=o.vout, satoshis=o.satoshis, address=o.address)
            for o in receipt.outputs
        ],
        beef=receipt.beef,
        block=chain_pb2.BlockRef(
            height=receipt.block_height, block_hash=receipt.block_hash, header=receipt.header
        ),
        task_id=settlement.task_id,
        bsv_txid=settlement.txid,
        total_cost_sats=settlement.total_cost_sats,
        payouts=[
            chain_pb2.TaskPayout(worker_id=worker_id, vout=vout, sats=sats)
            for worker_id, vout, sats in settlement.payouts
        ],
    )


def block_header(block: LedgerBlock) -> chain_pb2.BlockHeader:
    return _by_name(block, chain_pb2.BlockHeader)


def chain_transaction(tx: TxView) -> chain_pb2.ChainTransaction:
    outputs = [_by_name(o, chain_pb2.TransactionOutput) for o in tx.outputs]
    return _by_name(tx, chain_pb2.ChainTransaction, outputs=outputs)
