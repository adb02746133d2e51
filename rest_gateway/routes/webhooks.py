"""Webhooks: register, list, delete, and the delivery log of one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import webhooks_pb2
from rest_gateway import decode
from rest_gateway.core import call_metadata, core
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201)
async def create_webhook(request: Request) -> Response:
    message = decode.create_webhook(await decode.json_object(request, decode.SMALL_BODY))
    client = core(request)
    reply = await client.webhooks.CreateWebhook(
        message, metadata=call_metadata(request), timeout=client.timeout
    )
    return json(rest_json.webhook(reply), 201)


@router.get("")
async def list_webhooks(request: Request) -> Response:
    client = core(request)
    reply = await client.webhooks.ListWebhooks(
        webhooks_pb2.ListWebhooksRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json({"webhooks": [rest_json.webhook(w) for w in reply.webhooks]})


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    client = core(request)
    await client.webhooks.DeleteWebhook(
        webhooks_pb2.DeleteWebhookRequest(webhook_id=webhook_id),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(request: Request, webhook_id: str, limit: int | None = None) -> Response:
    client = core(request)
    reply = await client.webhooks.ListDeliveries(
        webhooks_pb2.ListDeliveriesRequest(webhook_id=webhook_id, limit=limit),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json({"deliveries": [rest_json.delivery(d) for d in reply.deliveries]})
