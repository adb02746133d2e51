"""Webhooks: register, list, delete, and the delivery log of one."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import webhooks_pb2
from rest_gateway import decode, models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, errors
from rest_gateway.params import PageLimit
from rest_gateway.responses import json
from rest_gateway.routes._declare import listing, post_body

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=errors(*AUTHED))


post_body(
    router,
    "create_webhook",
    reader=decode.WEBHOOK,
    rpc=lambda client: client.webhooks.CreateWebhook,
    render=rest_json.webhook,
    status_code=201,
    response_model=models.Webhook,
    refusals=(409,),
)


listing(
    router,
    "list_webhooks",
    rpc=lambda client: client.webhooks.ListWebhooks,
    request=webhooks_pb2.ListWebhooksRequest,
    field="webhooks",
    render=rest_json.webhook,
    response_model=models.WebhookList,
)


@router.delete("/{webhook_id}", status_code=204, responses=errors(404))
async def delete_webhook(webhook_id: str, call: Core) -> Response:
    await call(call.client.webhooks.DeleteWebhook, webhooks_pb2.DeleteWebhookRequest(webhook_id=webhook_id))
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    responses=errors(404),
    response_model=models.DeliveryList,
)
async def list_deliveries(call: Core, webhook_id: str, limit: PageLimit = None) -> Response:
    reply = await call(
        call.client.webhooks.ListDeliveries,
        webhooks_pb2.ListDeliveriesRequest(webhook_id=webhook_id, limit=limit),
    )
    return json({"deliveries": [rest_json.delivery(d) for d in reply.deliveries]})
