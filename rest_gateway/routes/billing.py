"""Billing — GET /v1/billing/usage?month=YYYY-MM, GET /v1/billing/invoices (docs/billing.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import billing_pb2
from rest_gateway.core import call_metadata, core
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/billing", tags=["billing"])


@router.get("/usage")
async def usage(request: Request, month: str | None = None) -> Response:
    """The core checks `month` (400 naming it); absent means the current UTC month."""
    client = core(request)
    reply = await client.billing.GetUsage(
        billing_pb2.GetUsageRequest(month=month or ""),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(rest_json.usage(reply))


@router.get("/invoices")
async def invoices(request: Request) -> Response:
    client = core(request)
    reply = await client.billing.ListInvoices(
        billing_pb2.ListInvoicesRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json({"invoices": [rest_json.invoice(i) for i in reply.invoices]})
