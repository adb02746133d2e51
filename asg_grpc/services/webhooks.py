"""WebhookService: register, list and delete endpoints, and read their delivery log."""

from __future__ import annotations

import time

import grpc

from asg_grpc.domain import ids
from asg_grpc.domain.webhooks import validate_webhook
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.services.auth import authenticate
from asg_grpc.services.errors import maps_domain_errors
from asg_grpc.services.ratelimit import KeyLimits
from asg_grpc.settings import Settings
from asg_grpc.store import Store
from asg_grpc.v1 import webhooks_pb2, webhooks_pb2_grpc
from asg_grpc.wire import convert
from asg_grpc.wire.urls import check_public_url


class WebhookService(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(
        self, store: Store, settings: Settings, sealer: Sealer, limits: KeyLimits | None = None
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._limits = limits
        self._allow_private_urls = settings.allow_private_urls

    @maps_domain_errors
    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Webhook:
        customer_id = authenticate(self._store, context, self._limits)
        spec = validate_webhook(request.callback_url, request.secret, list(request.events))
        await check_public_url(spec.callback_url, self._allow_private_urls)
        now = time.time()
        webhook_id = ids.new_id("whk", now)
        sealed = seal_webhook_secret(self._sealer, webhook_id, spec.secret)
        return convert.webhook(self._store.create_webhook(webhook_id, customer_id, spec, sealed, now))

    @maps_domain_errors
    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListWebhooksResponse:
        customer_id = authenticate(self._store, context, self._limits)
        hooks = self._store.list_webhooks(customer_id)
        return webhooks_pb2.ListWebhooksResponse(webhooks=[convert.webhook(h) for h in hooks])

    @maps_domain_errors
    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DeleteWebhookResponse:
        customer_id = authenticate(self._store, context, self._limits)
        self._store.delete_webhook(customer_id, request.webhook_id, time.time())
        return webhooks_pb2.DeleteWebhookResponse()

    @maps_domain_errors
    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListDeliveriesResponse:
        customer_id = authenticate(self._store, context, self._limits)
        records = self._store.list_deliveries(customer_id, request.webhook_id, convert.page_limit(request))
        return webhooks_pb2.ListDeliveriesResponse(deliveries=[convert.delivery(r) for r in records])
