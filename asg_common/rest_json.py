"""Protobuf messages → the JSON bodies of the REST reference: the gateway's one renderer.

Webhook bodies carry "the same object the REST API returns"; the core renders those from the
domain (asg_grpc/wire/events.py) and a test holds both to the same bytes (docs/wire.md).
"""

from __future__ import annotations

import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from asg_grpc.v1 import billing_pb2, chain_pb2, common_pb2, dashboard_pb2, jobs_pb2, tasks_pb2, webhooks_pb2

STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("TASK_STATUS_").lower() for name, value in common_pb2.TaskStatus.items() if value
}
STATUS_VALUES = {name: value for value, name in STATUS_NAMES.items()}
JOB_STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("JOB_STATUS_").lower() for name, value in jobs_pb2.JobStatus.items() if value
}


def iso(ts: Timestamp) -> str:
    """RFC 3339 in UTC with second precision, as the seeds show it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts.seconds))


def _optional(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


def label_spec(spec: common_pb2.LabelSpec) -> dict[str, Any]:
    return {"question": spec.question, "options": list(spec.options)}


def batch_status(b: tasks_pb2.BatchStatus) -> dict[str, Any]:
    return {
        "batch_id": b.batch_id,
        "total": b.total,
        "decided": b.decided,
        "counts": {name: getattr(b.counts, name) for name in STATUS_VALUES},
        "created_at": iso(b.created_at),
    }


def task(t: tasks_pb2.Task) -> dict[str, Any]:
    return {
        "task_id": t.task_id,
        "status": STATUS_NAMES[t.status],
        "task_type": t.task_type,
        "data_url": t.data_url,
        "label_spec": label_spec(t.label_spec),
        "consensus_threshold": t.consensus_threshold,
        "callback_url": _optional(t, "callback_url"),
        "idempotency_key": _optional(t, "idempotency_key"),
        "batch_id": _optional(t, "batch_id"),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
        "expires_at": _time(t, "expires_at"),
        "consensus_method": t.consensus_method,
        "target_confidence": t.target_confidence,
        "max_labels": t.max_labels,
        "gold_label": _optional(t, "gold_label"),
        "labor": t.labor or "any",
    }


def submitted(t: tasks_pb2.Task) -> dict[str, Any]:
    return {"task_id": t.task_id, "status": STATUS_NAMES[t.status], "created_at": iso(t.created_at)}


PENDING_MESSAGES = {
    "pending": "Task is waiting for workers.",
    "in_progress": "Task is still being labeled.",
}


def result(r: tasks_pb2.TaskResult) -> dict[str, Any]:
    """The 200 body of GET /v1/tasks/{id}/result (quickstart step 4)."""
    body: dict[str, Any] = {
        "task_id": r.task_id,
        "status": STATUS_NAMES[r.status],
        "consensus_label": _optional(r, "consensus_label"),
        "confidence": r.confidence,
        "worker_count": r.worker_count,
        "agreement_count": r.agreement_count,
        "label_spec": label_spec(r.label_spec),
        "labels": [
            {"worker_id": item.worker_id, "option": item.option, "created_at": iso(item.created_at)}
            for item in r.labels
        ],
        "decided_at": iso(r.decided_at),
        "settlement": None,
    }
    if r.HasField("settlement"):
        body["settlement"] = {
            "bsv_txid": r.settlement.bsv_txid,
            "total_cost_sats": r.settlement.total_cost_sats,
            "settled_at": iso(r.settlement.settled_at),
        }
    if r.HasField("failure_reason"):
        body["failure_reason"] = r.failure_reason
    return body


def pending_result(r: tasks_pb2.TaskResult) -> dict[str, Any]:
    status = STATUS_NAMES[r.status]
    return {"status": status, "message": PENDING_MESSAGES.get(status, "Task is not decided yet.")}


def customer(c: billing_pb2.Customer) -> dict[str, Any]:
    return {
        "customer_id": c.customer_id,
        "name": c.name,
        "email": c.email,
        "tier": c.tier,
        "label_quota": c.label_quota,
        "labels_reserved": c.labels_reserved,
        "quota_remaining": c.quota_remaining,
        "key_hint": c.key_hint,
        "created_at": iso(c.created_at),
        "prices": prices(c.prices),
        "rate_limit": {
            "per_second": c.rate_limit.per_second,
            "burst": c.rate_limit.burst,
            "enforced": c.rate_limit.enforced,
        },
        "consensus_method": c.consensus_method or None,
    }


def prices(p: billing_pb2.Prices) -> dict[str, Any]:
    return {"label_price_sats": p.label_price_sats, "task_price_sats": p.task_price_sats}


def _usage_counts(line: billing_pb2.UsageLine) -> dict[str, Any]:
    return {
        "tasks_submitted": line.tasks_submitted,
        "tasks_charged": line.tasks_charged,
        "tasks_failed": line.tasks_failed,
        "labels_collected": line.labels_collected,
        "sats_charged": line.sats_charged,
    }


def usage(u: billing_pb2.Usage) -> dict[str, Any]:
    """The body of GET /v1/billing/usage (docs/api.md, Billing)."""
    return {
        "month": u.month,
        "tier": u.tier,
        "period_start": iso(u.period_start),
        "period_end": iso(u.period_end),
        "prices": prices(u.prices),
        **_usage_counts(u.total),
        "by_type": {line.task_type: _usage_counts(line) for line in u.by_type},
    }


def invoice(i: billing_pb2.Invoice) -> dict[str, Any]:
    """One invoice of GET /v1/billing/invoices: a line per task type with charged tasks."""
    u = i.usage
    return {
        "invoice_id": i.invoice_id,
        "month": u.month,
        "status": i.status,
        "tier": u.tier,
        "period_start": iso(u.period_start),
        "period_end": iso(u.period_end),
        "prices": prices(u.prices),
        "line_items": [
            {
                "task_type": line.task_type,
                "tasks": line.tasks_charged,
                "labels": line.labels_collected,
                "sats": line.sats_charged,
            }
            for line in u.by_type
            if line.tasks_charged
        ],
        "total_tasks": u.total.tasks_charged,
        "total_labels": u.total.labels_collected,
        "total_sats": u.total.sats_charged,
    }


def _time(msg: Any, name: str) -> str | None:
    return iso(getattr(msg, name)) if msg.HasField(name) else None


def api_key(k: billing_pb2.ApiKey) -> dict[str, Any]:
    """A key as anyone is shown it: the hint and its dates, never the key."""
    return {"key_hint": k.key_hint, "created_at": iso(k.created_at), "expires_at": _time(k, "expires_at")}


def webhook(w: webhooks_pb2.Webhook) -> dict[str, Any]:
    """Never the secret: the API has no way to return it."""
    return {
        "webhook_id": w.webhook_id,
        "callback_url": w.callback_url,
        "events": list(w.events),
        "active": w.active,
        "created_at": iso(w.created_at),
    }


def delivery(d: webhooks_pb2.Delivery) -> dict[str, Any]:
    return {
        "delivery_id": d.delivery_id,
        "event_id": d.event_id,
        "event": d.event,
        "state": d.state,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code or None,
        "last_error": d.last_error or None,
        "next_attempt_at": _time(d, "next_attempt_at"),
        "delivered_at": _time(d, "delivered_at"),
        "created_at": iso(d.created_at),
    }


def job(j: jobs_pb2.Job) -> dict[str, Any]:
    """GET /v1/jobs/{id}, and the data of job.* webhook events."""
    c = j.counts
    return {
        "job_id": j.job_id,
        "status": JOB_STATUS_NAMES[j.status],
        "manifest_url": j.manifest_url,
        "type": j.task_type,
        "label_spec": label_spec(j.label_spec),
        "consensus_threshold": j.consensus_threshold,
        "callback_url": _optional(j, "callback_url"),
        "counts": {
            "lines": c.lines,
            "tasks_created": c.tasks_created,
            "tasks_reused": c.tasks_reused,
            "invalid_lines": c.invalid_lines,
            "verified": c.verified,
            "settled": c.settled,
            "failed": c.failed,
            "cancelled": c.cancelled,
            "expired": c.expired,
        },
        "errors": [{"line": e.line, "error": e.error} for e in j.errors],
        "failure_reason": _optional(j, "failure_reason"),
        "created_at": iso(j.created_at),
        "updated_at": iso(j.updated_at),
        "completed_at": _time(j, "completed_at"),
        "labor": j.labor or "any",
    }


def job_created(j: jobs_pb2.Job) -> dict[str, Any]:
    """The 202 body of POST /v1/jobs."""
    return {"job_id": j.job_id, "status": JOB_STATUS_NAMES[j.status]}


def job_summary(j: jobs_pb2.Job) -> dict[str, Any]:
    """A job in GET /v1/jobs: its row as stored, without the per-status task counts and errors
    that GET /v1/jobs/{id} computes."""
    body = job(j)
    for name in ("verified", "settled", "failed", "cancelled", "expired"):
        del body["counts"][name]
    del body["errors"]
    return body


def task_receipt(r: chain_pb2.TaskReceipt) -> dict[str, Any]:
    """GET /v1/tasks/{id}/receipt: the ledger's receipt document (docs/ledger.md, as
    `verify_receipt_document` reads it) plus what this task paid each agreeing worker."""
    return {
        "version": r.version,
        "network": r.network,
        "txid": r.txid,
        "outputs": [{"vout": o.vout, "satoshis": o.satoshis, "address": o.address} for o in r.outputs],
        "beef": r.beef.hex(),
        "block": {"height": r.block.height, "hash": r.block.block_hash, "header": r.block.header.hex()},
        "task_id": r.task_id,
        "bsv_txid": r.bsv_txid,
        "total_cost_sats": r.total_cost_sats,
        "payouts": [{"worker_id": p.worker_id, "vout": p.vout, "sats": p.sats} for p in r.payouts],
    }


def chain_headers(h: chain_pb2.GetHeadersResponse) -> dict[str, Any]:
    """GET /v1/chain/headers."""
    return {
        "headers": [
            {
                "height": b.height,
                "hash": b.block_hash,
                "header": b.header.hex(),
                "merkle_root": b.merkle_root,
                "time": b.time,
            }
            for b in h.headers
        ],
        "tip_height": _optional(h, "tip_height"),
    }


def chain_transaction(t: chain_pb2.ChainTransaction) -> dict[str, Any]:
    """GET /v1/chain/tx/{txid}: the local network's explorer page of a transaction."""
    return {
        "txid": t.txid,
        "hex": t.raw.hex(),
        "block_height": _optional(t, "block_height"),
        "block_hash": _optional(t, "block_hash"),
        "fee": t.fee,
        "outputs": [
            {"vout": o.vout, "satoshis": o.satoshis, "address": _optional(o, "address")} for o in t.outputs
        ],
    }


BILLING_LINKS = {"usage": "/v1/billing/usage", "invoices": "/v1/billing/invoices"}


def dashboard_overview(o: dashboard_pb2.Overview) -> dict[str, Any]:
    return {
        "by_status": {s.status: s.count for s in o.by_status},
        "total": o.total,
        "avg_confidence": _optional(o, "avg_confidence"),
        "avg_settlement_seconds": _optional(o, "avg_settlement_seconds"),
        "tasks_per_day": [{"date": d.day, "count": d.count} for d in o.tasks_per_day],
    }


def dashboard_tasks(p: dashboard_pb2.DashboardTaskPage) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "task_id": t.task_id,
                "status": t.status,
                "task_type": t.task_type,
                "consensus_label": _optional(t, "consensus_label"),
                "confidence": _optional(t, "confidence"),
                "bsv_txid": _optional(t, "bsv_txid"),
                "created_at": iso(t.created_at),
            }
            for t in p.tasks
        ],
        "page": p.page,
        "per_page": p.per_page,
        "total": p.total,
        "pages": p.pages,
    }


def dashboard_quality(q: dashboard_pb2.Quality) -> dict[str, Any]:
    bins = len(q.confidence_histogram)
    return {
        "decided": q.decided,
        "perfect_agreement": q.perfect_agreement,
        "perfect_agreement_rate": _optional(q, "perfect_agreement_rate"),
        "confidence_histogram": [
            {"min": i / bins, "max": (i + 1) / bins, "count": n} for i, n in enumerate(q.confidence_histogram)
        ],
        "label_distribution": [{"label": lc.label, "count": lc.count} for lc in q.label_distribution],
    }


def dashboard_usage(u: dashboard_pb2.DashboardUsage) -> dict[str, Any]:
    c = u.customer
    return {
        "tier": c.tier,
        "label_quota": c.label_quota,
        "labels_reserved": c.labels_reserved,
        "quota_remaining": c.quota_remaining,
        "rate_limit_tier": c.tier,
        "rate_limit": {
            "per_second": c.rate_limit.per_second,
            "burst": c.rate_limit.burst,
            "enforced": c.rate_limit.enforced,
        },
        "key_hint": c.key_hint,
        "usage": usage(u.usage),
        "links": BILLING_LINKS,
    }
