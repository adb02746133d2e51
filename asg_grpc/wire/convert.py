"""Domain values ⇄ protobuf messages. No rules here: only shapes."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from asg_grpc.domain import billing
from asg_grpc.domain.customers import ApiKey, Customer
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.jobs import Job, JobDraft, JobStatus, S3Credentials
from asg_grpc.domain.tasks import BatchProgress, LabelRecord, Task, TaskDraft, TaskStatus
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


def draft(msg: tasks_pb2.TaskInput) -> TaskDraft:
    has = msg.HasField  # bound once: this runs for every task of every batch
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
    )


def task(t: Task) -> tasks_pb2.Task:
    spec = t.spec
    return tasks_pb2.Task(
        task_id=t.task_id,
        status=STATUS_TO_PB[t.status],
        task_type=spec.task_type,
        data_url=spec.data_url,
        label_spec=common_pb2.LabelSpec(question=spec.question, options=spec.options),
        consensus_threshold=spec.consensus_threshold,
        callback_url=spec.callback_url,
        idempotency_key=spec.idempotency_key,
        batch_id=t.batch_id,
        created_at=timestamp(t.created_at),
        updated_at=timestamp(t.updated_at),
        expires_at=None if t.expires_at is None else timestamp(t.expires_at),
        consensus_method=spec.consensus_method,
        target_confidence=spec.target_confidence,
        max_labels=spec.max_labels,
        gold_label=spec.gold_label,  # reads are scoped to the owner; workers never get a Task
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
        label_spec=common_pb2.LabelSpec(question=t.spec.question, options=t.spec.options),
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
    return billing_pb2.Customer(
        customer_id=c.customer_id,
        name=c.name,
        email=c.email,
        tier=c.tier,
        label_quota=c.label_quota,
        labels_reserved=c.labels_reserved,
        key_hint=c.key_hint,
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
    return billing_pb2.UsageLine(
        task_type=line.task_type,
        tasks_submitted=line.tasks_submitted,
        tasks_charged=line.tasks_charged,
        tasks_failed=line.tasks_failed,
        labels_collected=line.labels_collected,
        sats_charged=line.sats_charged,
    )


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
    return webhooks_pb2.Webhook(
        webhook_id=w.webhook_id,
        callback_url=w.callback_url,
        events=w.events,
        active=w.active,
        created_at=timestamp(w.created_at),
    )


def delivery(d: DeliveryRecord) -> webhooks_pb2.Delivery:
    return webhooks_pb2.Delivery(
        delivery_id=d.delivery_id,
        event_id=d.event_id,
        event=d.event_type,
        state=d.state,
        attempts=d.attempts,
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
    has = msg.HasField
    spec = msg.label_spec if has("label_spec") else None
    credentials = None
    if has("s3_credentials"):
        c = msg.s3_credentials
        credentials = S3Credentials(
            access_key_id=c.access_key_id,
            secret_access_key=c.secret_access_key,
            region=c.region,
            endpoint_url=c.endpoint_url if c.HasField("endpoint_url") else None,
        )
    return JobDraft(
        manifest_url=msg.manifest_url if has("manifest_url") else None,
        has_label_spec=spec is not None,
        question=None if spec is None else spec.question,
        options=None if spec is None else tuple(spec.options),
        type=msg.type if has("type") else None,
        consensus_threshold=msg.consensus_threshold if has("consensus_threshold") else None,
        callback_url=msg.callback_url if has("callback_url") else None,
        s3_credentials=credentials,
    )


def job(j: Job) -> jobs_pb2.Job:
    spec, counts = j.spec, j.counts
    return jobs_pb2.Job(
        job_id=j.job_id,
        status=JOB_STATUS_TO_PB[j.status],
        manifest_url=spec.manifest_url,
        task_type=spec.task_type,
        label_spec=common_pb2.LabelSpec(question=spec.question, options=spec.options),
        consensus_threshold=spec.consensus_threshold,
        callback_url=spec.callback_url,
        counts=jobs_pb2.JobCounts(
            lines=counts.lines,
            tasks_created=counts.tasks_created,
            tasks_reused=counts.tasks_reused,
            invalid_lines=counts.invalid_lines,
            verified=counts.verified,
            settled=counts.settled,
            failed=counts.failed,
            cancelled=counts.cancelled,
            expired=counts.expired,
        ),
        errors=[jobs_pb2.JobError(line=line, error=error) for line, error in j.errors],
        failure_reason=j.failure_reason,
        created_at=timestamp(j.created_at),
        updated_at=timestamp(j.updated_at),
        completed_at=None if j.completed_at is None else timestamp(j.completed_at),
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
    return chain_pb2.BlockHeader(
        height=block.height,
        block_hash=block.block_hash,
        header=block.header,
        merkle_root=block.merkle_root,
        time=block.time,
    )


def chain_transaction(tx: TxView) -> chain_pb2.ChainTransaction:
    return chain_pb2.ChainTransaction(
        txid=tx.txid,
        raw=tx.raw,
        block_height=tx.block_height,
        block_hash=tx.block_hash,
        fee=tx.fee,
        outputs=[
            chain_pb2.TransactionOutput(vout=o.vout, satoshis=o.satoshis, address=o.address)
            for o in tx.outputs
        ],
    )
