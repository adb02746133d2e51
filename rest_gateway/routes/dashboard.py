"""Dashboard — overview, task list, quality, usage: what the Console shows (docs/api.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import dashboard_pb2
from rest_gateway.core import call_metadata, core
from rest_gateway.errors import BadRequest
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

_INT32 = 2**31
BILLING_LINKS = {"usage": "/v1/billing/usage", "invoices": "/v1/billing/invoices"}


def _optional(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


@router.get("/overview")
async def overview(request: Request) -> Response:
    client = core(request)
    o = await client.dashboard.GetOverview(
        dashboard_pb2.GetOverviewRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json(
        {
            "by_status": {s.status: s.count for s in o.by_status},
            "total": o.total,
            "avg_confidence": _optional(o, "avg_confidence"),
            "avg_settlement_seconds": _optional(o, "avg_settlement_seconds"),
            "tasks_per_day": [{"date": d.day, "count": d.count} for d in o.tasks_per_day],
        }
    )


@router.get("/tasks")
async def tasks(
    request: Request,
    page: int | None = None,
    per_page: int | None = None,
    status: str = "",
    sort: str = "",
) -> Response:
    """The ranges are the core's rule; only what an int32 field can carry is checked here."""
    for name, value in (("page", page), ("per_page", per_page)):
        if value is not None and not -_INT32 <= value < _INT32:
            raise BadRequest(name, "is out of range")
    client = core(request)
    reply = await client.dashboard.ListDashboardTasks(
        dashboard_pb2.ListDashboardTasksRequest(page=page, per_page=per_page, status=status, sort=sort),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(
        {
            "tasks": [
                {
                    "task_id": t.task_id,
                    "status": t.status,
                    "task_type": t.task_type,
                    "consensus_label": _optional(t, "consensus_label"),
                    "confidence": _optional(t, "confidence"),
                    "bsv_txid": _optional(t, "bsv_txid"),
                    "created_at": rest_json.iso(t.created_at),
                }
                for t in reply.tasks
            ],
            "page": reply.page,
            "per_page": reply.per_page,
            "total": reply.total,
            "pages": reply.pages,
        }
    )


@router.get("/quality")
async def quality(request: Request) -> Response:
    client = core(request)
    q = await client.dashboard.GetQuality(
        dashboard_pb2.GetQualityRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json(
        {
            "decided": q.decided,
            "perfect_agreement": q.perfect_agreement,
            "perfect_agreement_rate": _optional(q, "perfect_agreement_rate"),
            "confidence_histogram": [
                {"min": i / 10, "max": (i + 1) / 10, "count": n} for i, n in enumerate(q.confidence_histogram)
            ],
            "label_distribution": [{"label": lc.label, "count": lc.count} for lc in q.label_distribution],
        }
    )


@router.get("/usage")
async def usage(request: Request) -> Response:
    client = core(request)
    u = await client.dashboard.GetDashboardUsage(
        dashboard_pb2.GetDashboardUsageRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    c = u.customer
    return json(
        {
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
            "usage": rest_json.usage(u.usage),
            "links": BILLING_LINKS,
        }
    )
