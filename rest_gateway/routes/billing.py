"""Billing — GET /v1/billing/usage?month=YYYY-MM, GET /v1/billing/invoices (docs/billing.md)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import billing_pb2
from rest_gateway import models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, errors
from rest_gateway.responses import json
from rest_gateway.routes._declare import listing

router = APIRouter(prefix="/v1/billing", tags=["billing"], responses=errors(*AUTHED))


@router.get("/usage", response_model=models.Usage)
async def usage(call: Core, month: str | None = None) -> Response:
    """The core checks `month` (400 naming it); absent means the current UTC month."""
    reply = await call(call.client.billing.GetUsage, billing_pb2.GetUsageRequest(month=month or ""))
    return json(rest_json.usage(reply))


listing(
    router,
    "invoices",
    path="/invoices",
    rpc=lambda client: client.billing.ListInvoices,
    request=billing_pb2.ListInvoicesRequest,
    field="invoices",
    render=rest_json.invoice,
    response_model=models.InvoiceList,
)
