"""The JSON bodies the gateway reads and answers, as /v1/openapi.json describes them (request
examples from shared/seeds/).

decode.py reads the request bodies (its messages name fields the way docs/api.md promises);
asg_common/rest_json.py builds the answers. These models state the same shapes for the OpenAPI,
and tests/gateway/test_openapi.py holds all three together: what a request model accepts the
gateway accepts, and every real answer validates against its response model. Rules of the field
table (lengths, ranges) are the core's and are listed in docs/api.md, Limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

_STRICT = ConfigDict(extra="forbid", strict=True)


def _with_example(example: JsonDict) -> ConfigDict:
    """A request body's config: unknown fields and type coercions refused, as decode.py does."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [example]})


class LabelSpec(BaseModel):
    model_config = _STRICT
    question: str = Field(description="Asked of every worker; at most 1000 characters")
    options: list[str] = Field(description="2 to 50 distinct answers, each at most 200 characters")


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
    consensus_threshold: int | None = Field(None, description="Matching labels needed, 2 to 10 (default 3)")
    callback_url: str | None = Field(None, description="URL of one of the customer's webhooks")
    idempotency_key: str | None = Field(None, description="1 to 255 characters; a repeat replays the task")
    expires_in_seconds: int | None = Field(None, description="1 to 2592000; absent: no deadline")


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


class CustomerInput(BaseModel):
    model_config = _with_example({"name": "Demo", "email": "demo@example.com"})
    name: str = Field(description="At most 200 characters")
    email: str = Field(description="At most 254 characters; one customer per address")


class WebhookInput(BaseModel):
    model_config = _with_example(
        {"callback_url": "https://hooks.example.com/asg", "secret": "whsec_at_least_8"}
    )
    callback_url: str = Field(description="https URL receiving the signed events")
    secret: str = Field(description="8 to 256 characters; signs every delivery, never returned")
    events: list[str] | None = Field(None, description="Event types (default: all)")


class S3Credentials(BaseModel):
    model_config = _STRICT
    access_key_id: str
    secret_access_key: str
    region: str
    endpoint_url: str | None = None


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
    consensus_threshold: int | None = None
    callback_url: str | None = None
    s3_credentials: S3Credentials | None = None


# The answers. Routes return them already serialised (orjson), so FastAPI never runs these;
# extra="forbid" makes the tests fail when rest_json.py gains a field these do not list.
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    """Every error's body (docs/api.md, Errors)."""

    error: str = Field(description="What went wrong, naming the offending field or parameter.")


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
