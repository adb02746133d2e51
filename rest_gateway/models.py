"""The JSON bodies the gateway reads and answers, as /v1/openapi.json describes them (request
examples from shared/seeds/).

The request models are what the routes read: decode.py hands a body to one of them
(`decode.TASK.read(request)`), turns a refusal into a 400 naming the field as the client sent it,
and the model's `to_proto()` is the core's request. They check shapes only (types, unknown
fields, presence); the rules of the field table (lengths, ranges) are the core's, so gRPC callers
get them too, and are listed in docs/api.md, Limits. asg_common/rest_json.py builds the answers;
tests/gateway/test_openapi.py checks every real answer against its response model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from asg_grpc.v1 import billing_pb2, common_pb2, jobs_pb2, tasks_pb2, webhooks_pb2

# Unknown fields and type coercions refused: `"3"` is not an integer, `true` not 1.
_STRICT = ConfigDict(extra="forbid", strict=True)

# What a protobuf int64 holds; the field's own range is the core's rule.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def _with_example(example: JsonDict) -> ConfigDict:
    """A request body's config: strict, with the example the OpenAPI shows."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [example]})


class LabelSpec(BaseModel):
    model_config = _STRICT
    question: str = Field(description="Asked of every worker; at most 1000 characters")
    options: list[str] = Field(description="2 to 50 distinct answers, each at most 200 characters")

    def to_proto(self) -> common_pb2.LabelSpec:
        return common_pb2.LabelSpec(question=self.question, options=self.options)


class TaskInput(BaseModel):
    model_config = _with_example(
        {
            "type": "image_classification",
            "data_url": "https://example.com/image.jpg",
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            "consensus_threshold": 3,
        }
    )
    type: str = Field(description="image_classification, text_classification, sentiment or moderation")
    data_url: str = Field(description="https URL of the item to label")
    label_spec: LabelSpec
    consensus_threshold: Int64 | None = Field(None, description="Matching labels needed, 2 to 10 (default 3)")
    callback_url: str | None = Field(None, description="URL of one of the customer's webhooks")
    idempotency_key: str | None = Field(None, description="1 to 255 characters; a repeat replays the task")
    expires_in_seconds: Int64 | None = Field(None, description="1 to 2592000; absent: no deadline")
    consensus_method: str | None = Field(
        None, description="majority (the published rule) or adaptive (worker-aware); default majority"
    )
    target_confidence: float | None = Field(
        None, description="adaptive: stop at this posterior, 0.5 to 0.999 (default 0.95)"
    )
    max_labels: Int64 | None = Field(None, description="adaptive: most labels bought, threshold to 50 (10)")
    gold_label: str | None = Field(
        None, description="Known answer (one of the options) of a gold task; never shown to workers"
    )
    labor: str | None = Field(
        None, description="any (every worker, the default) or challenge (challenge gateways only)"
    )

    def to_proto(self) -> tasks_pb2.TaskInput:
        # The fields are TaskInput's, by name: one dump (Rust) instead of an attribute read and
        # a keyword per field, 2 µs less per task of a batch (docs/benchmarks.md, issue 17).
        return tasks_pb2.TaskInput(**self.model_dump(exclude_none=True))


class BatchInput(BaseModel):
    model_config = _with_example(
        {
            "tasks": [
                {
                    "type": "image_classification",
                    "data_url": "https://ex.com/a.jpg",
                    "label_spec": {"question": "Q?", "options": ["a", "b"]},
                }
            ]
        }
    )
    tasks: list[TaskInput] = Field(description="1 to 1000 tasks, validated whole before any is stored")
    callback_url: str | None = Field(None, description="For the tasks that name none")
    labor: str | None = Field(None, description="any or challenge, for the tasks that name none")

    def to_proto(self) -> tasks_pb2.SubmitBatchRequest:
        return tasks_pb2.SubmitBatchRequest(**self.model_dump(exclude_none=True))  # as TaskInput's


class CustomerInput(BaseModel):
    model_config = _with_example({"name": "Demo", "email": "demo@example.com"})
    name: str = Field(description="At most 200 characters")
    email: str = Field(description="At most 254 characters; one customer per address")

    def to_proto(self) -> billing_pb2.RegisterCustomerRequest:
        return billing_pb2.RegisterCustomerRequest(name=self.name, email=self.email)


class CustomerUpdate(BaseModel):
    model_config = _with_example({"consensus_method": "adaptive"})
    consensus_method: str | None = Field(
        None,
        description="Default for your tasks that name none: majority or adaptive; null: the"
        " deployment's default. Absent: unchanged",
    )

    def to_proto(self) -> billing_pb2.UpdateCustomerRequest:
        if "consensus_method" not in self.model_fields_set:
            return billing_pb2.UpdateCustomerRequest()
        return billing_pb2.UpdateCustomerRequest(consensus_method=self.consensus_method or "")


class KeyRotation(BaseModel):
    model_config = _with_example({"grace_seconds": 3600})
    grace_seconds: Int64 | None = Field(
        None, description="How long the replaced key stays valid, 0 to 604800 (default 86400)"
    )

    def to_proto(self) -> billing_pb2.RotateKeyRequest:
        return billing_pb2.RotateKeyRequest(grace_seconds=self.grace_seconds)


class WebhookInput(BaseModel):
    model_config = _with_example(
        {"callback_url": "https://hooks.example.com/asg", "secret": "whsec_at_least_8"}
    )
    callback_url: str = Field(description="https URL receiving the signed events")
    secret: str = Field(description="8 to 256 characters; signs every delivery, never returned")
    events: list[str] | None = Field(None, description="Event types (default: all)")

    def to_proto(self) -> webhooks_pb2.CreateWebhookRequest:
        return webhooks_pb2.CreateWebhookRequest(
            callback_url=self.callback_url, secret=self.secret, events=self.events or []
        )


class S3Credentials(BaseModel):
    model_config = _STRICT
    access_key_id: str
    secret_access_key: str
    region: str
    endpoint_url: str | None = None

    def to_proto(self) -> jobs_pb2.S3Credentials:
        return jobs_pb2.S3Credentials(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            region=self.region,
            endpoint_url=self.endpoint_url,
        )


class JobInput(BaseModel):
    model_config = _with_example(
        {
            "manifest_url": "https://example.com/manifest.jsonl",
            "type": "image_classification",
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
        }
    )
    manifest_url: str = Field(description="https:// or s3:// URL of a JSONL manifest (docs/jobs.md)")
    label_spec: LabelSpec
    type: str | None = None
    consensus_threshold: Int64 | None = None
    callback_url: str | None = None
    s3_credentials: S3Credentials | None = None
    labor: str | None = Field(None, description="any (the default) or challenge, for every task of the job")

    def to_proto(self) -> jobs_pb2.CreateJobRequest:
        return jobs_pb2.CreateJobRequest(
            manifest_url=self.manifest_url,
            label_spec=self.label_spec.to_proto(),
            type=self.type,
            consensus_threshold=self.consensus_threshold,
            callback_url=self.callback_url,
            s3_credentials=None if self.s3_credentials is None else self.s3_credentials.to_proto(),
            labor=self.labor,
        )


# The answers. Routes return them already serialised (orjson), so FastAPI never runs these;
# extra="forbid" makes the tests fail when rest_json.py gains a field these do not list.
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    """Every error's body (docs/api.md, Errors)."""

    error: str = Field(description="What went wrong, naming the offending field or parameter.")


class QuotaErrorBody(ErrorBody):
    """A 403 `quota exhausted`: the seed's body plus the figures, in labels (docs/api.md)."""

    limit: int = Field(description="The customer's label quota (its tier's).")
    used: int = Field(description="Labels already reserved by the customer's tasks.")
    requested: int = Field(description="Labels the refused request needed.")
    hint: str = Field(description="The way out: the operator command that raises the quota.")


class LabelSpecOut(_Out):
    question: str
    options: list[str]


class Prices(_Out):
    label_price_sats: int
    task_price_sats: int


class RateLimit(_Out):
    per_second: float
    burst: int
    enforced: bool


class CustomerCreated(_Out):
    customer_id: str
    api_key: str = Field(description="Shown once: the store keeps only its SHA-256")
    tier: str
    label_quota: int
    message: str


class Customer(_Out):
    customer_id: str
    name: str
    email: str
    tier: str
    label_quota: int
    labels_reserved: int
    quota_remaining: int
    key_hint: str
    created_at: str
    prices: Prices
    rate_limit: RateLimit
    consensus_method: str | None = Field(
        description="Default for tasks that name none; null: the deployment's default"
    )


class Submitted(_Out):
    task_id: str
    status: str
    created_at: str
    idempotent: bool | None = Field(None, description="true on a 200: the key's earlier task")


class BatchAccepted(_Out):
    batch_id: str
    task_count: int
    status: str
    task_ids: list[str]


class BatchCounts(_Out):
    pending: int
    in_progress: int
    verified: int
    settled: int
    failed: int
    cancelled: int
    expired: int


class BatchStatus(_Out):
    batch_id: str
    total: int
    decided: int
    counts: BatchCounts
    created_at: str


class Task(_Out):
    task_id: str
    status: str
    task_type: str
    data_url: str
    label_spec: LabelSpecOut
    consensus_threshold: int
    callback_url: str | None
    idempotency_key: str | None
    batch_id: str | None
    created_at: str
    updated_at: str
    expires_at: str | None
    consensus_method: str
    target_confidence: float
    max_labels: int
    gold_label: str | None
    labor: str


class TaskPage(_Out):
    tasks: list[Task]
    next_cursor: str | None


class Label(_Out):
    worker_id: str
    option: str
    created_at: str


class Settlement(_Out):
    bsv_txid: str
    total_cost_sats: int
    settled_at: str


class TaskResult(_Out):
    """200 once decided; while pending or in progress the 202 body is `{status, message}`."""

    task_id: str
    status: str
    consensus_label: str | None
    confidence: float
    worker_count: int
    agreement_count: int
    label_spec: LabelSpecOut
    labels: list[Label]
    decided_at: str
    settlement: Settlement | None
    failure_reason: str | None = None


class Webhook(_Out):
    webhook_id: str
    callback_url: str
    events: list[str]
    active: bool
    created_at: str


class WebhookList(_Out):
    webhooks: list[Webhook]


class Delivery(_Out):
    delivery_id: str
    event_id: str
    event: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    delivered_at: str | None
    created_at: str


class DeliveryList(_Out):
    deliveries: list[Delivery]


class JobCreated(_Out):
    job_id: str
    status: str


class JobCounts(_Out):
    lines: int
    tasks_created: int
    tasks_reused: int
    invalid_lines: int
    verified: int | None = None
    settled: int | None = None
    failed: int | None = None
    cancelled: int | None = None
    expired: int | None = None


class LineError(_Out):
    line: int
    error: str


class Job(_Out):
    job_id: str
    status: str
    manifest_url: str
    type: str
    label_spec: LabelSpecOut
    consensus_threshold: int
    callback_url: str | None
    counts: JobCounts
    errors: list[LineError] | None = Field(None, description="GET /v1/jobs/{id} only")
    failure_reason: str | None
    created_at: str
    updated_at: str
    completed_at: str | None
    labor: str


class JobPage(_Out):
    jobs: list[Job]
    next_cursor: str | None


class UsageCounts(_Out):
    tasks_submitted: int
    tasks_charged: int
    tasks_failed: int
    labels_collected: int
    sats_charged: int


class Usage(UsageCounts):
    month: str
    tier: str
    period_start: str
    period_end: str
    prices: Prices
    by_type: dict[str, UsageCounts]


class LineItem(_Out):
    task_type: str
    tasks: int
    labels: int
    sats: int


class Invoice(_Out):
    invoice_id: str
    month: str
    status: str
    tier: str
    period_start: str
    period_end: str
    prices: Prices
    line_items: list[LineItem]
    total_tasks: int
    total_labels: int
    total_sats: int


class InvoiceList(_Out):
    invoices: list[Invoice]


class DayCount(_Out):
    date: str = Field(description="UTC day, YYYY-MM-DD")
    count: int


class DashboardOverview(_Out):
    by_status: dict[str, int] = Field(description="Every status the API returns, 0 included")
    total: int
    avg_confidence: float | None = Field(description="Over decided tasks; null before any")
    avg_settlement_seconds: float | None = Field(description="Submit → settled; null before any")
    tasks_per_day: list[DayCount] = Field(description="The last 30 UTC days, oldest first")


class DashboardTask(_Out):
    task_id: str
    status: str
    task_type: str
    consensus_label: str | None
    confidence: float | None
    bsv_txid: str | None
    created_at: str


class DashboardTaskPage(_Out):
    tasks: list[DashboardTask]
    page: int
    per_page: int
    total: int
    pages: int


class HistogramBin(_Out):
    min: float
    max: float
    count: int


class LabelCount(_Out):
    label: str
    count: int


class DashboardQuality(_Out):
    decided: int
    perfect_agreement: int
    perfect_agreement_rate: float | None
    confidence_histogram: list[HistogramBin] = Field(description="10 bins of width 0.1")
    label_distribution: list[LabelCount]


class BillingLinks(_Out):
    usage: str
    invoices: str


class DashboardUsage(_Out):
    tier: str
    label_quota: int
    labels_reserved: int
    quota_remaining: int
    rate_limit_tier: str
    rate_limit: RateLimit
    key_hint: str = Field(description="The key's last characters; never the key")
    usage: Usage
    links: BillingLinks


class Output(_Out):
    vout: int
    satoshis: int
    address: str | None


class BlockRef(_Out):
    height: int
    hash: str
    header: str


class Payout(_Out):
    worker_id: str
    vout: int
    sats: int


class TaskReceipt(_Out):
    version: int
    network: str
    txid: str
    outputs: list[Output]
    beef: str
    block: BlockRef
    task_id: str
    bsv_txid: str
    total_cost_sats: int
    payouts: list[Payout]


class BlockHeader(_Out):
    height: int
    hash: str
    header: str
    merkle_root: str
    time: int


class Headers(_Out):
    headers: list[BlockHeader]
    tip_height: int | None


class ChainTransaction(_Out):
    txid: str
    hex: str
    block_height: int | None
    block_hash: str | None
    fee: int
    outputs: list[Output]


class Health(_Out):
    ok: bool
    service: str
    error: str | None = None
