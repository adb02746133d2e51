"""WebhookService: register, list and delete endpoints, and read their delivery log."""

from __future__ import annotations

import time

import grpc

from asg_grpc.domain import ids
from asg_grpc.domain.webhooks import validate_webhook
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.services.callers import Callers
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Webhooks
from asg_grpc.v1 import webhooks_pb2, webhooks_pb2_grpc
from asg_grpc.wire import convert
from asg_grpc.wire.urls import check_public_url


class WebhookService(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, store: Webhooks, settings: Settings, sealer: Sealer, callers: Callers) -> None:
        self._store = store
        self._sealer = sealer
        self._callers = callers
        self._allow_private_urls = settings.allow_private_urls
        self._dev_mode = settings.dev_mode

    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Webhook:
        customer_id = self._callers.customer(context).customer_id
        spec = validate_webhook(request.callback_url, request.secret, list(request.events), self._dev_mode)
        await check_public_url(spec.callback_url, self._allow_private_urls, dev_mode=self._dev_mode)
        now = time.time()
        webhook_id = ids.new_id("whk", now)
        sealed = seal_webhook_secret(self._sealer, webhook_id, spec.secret)
        return convert.webhook(self._store.create_webhook(webhook_id, customer_id, spec, sealed, now))

    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListWebhooksResponse:
        customer_id = self._callers.customer(context).customer_id
        hooks = self._store.list_webhooks(customer_id)
        return webhooks_pb2.ListWebhooksResponse(webhooks=[convert.webhook(h) for h in hooks])

    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DeleteWebhookResponse:
        customer_id = self._callers.customer(context).customer_id
        self._store.delete_webhook(customer_id, request.webhook_id, time.time())
        return webhooks_pb2.DeleteWebhookResponse()

    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListDeliveriesResponse:
        customer_id = self._callers.customer(context).customer_id
        records = self._store.list_deliveries(customer_id, request.webhook_id, convert.page_limit(request))
        return webhooks_pb2.ListDeliveriesResponse(deliveries=[convert.delivery(r) for r in records])
