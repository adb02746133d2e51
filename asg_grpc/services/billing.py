"""BillingService: registration, the customer's own record (quota, key hint)."""

from __future__ import annotations

import time

import grpc

from asg_grpc.domain.customers import hash_token, key_hint, new_api_key, validate_registration
from asg_grpc.services import convert
from asg_grpc.services.auth import authenticate_customer
from asg_grpc.services.errors import maps_domain_errors
from asg_grpc.settings import Settings
from asg_grpc.store import Store
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc


class BillingService(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    @maps_domain_errors
    async def RegisterCustomer(
        self, request: billing_pb2.RegisterCustomerRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.RegisterCustomerResponse:
        registration = validate_registration(request.name, request.email)
        api_key = new_api_key("sandbox")
        customer = self._store.create_customer(
            registration,
            tier="sandbox",
            label_quota=self._settings.sandbox_label_quota,
            key_hash=hash_token(api_key),
            key_hint=key_hint(api_key),
            now=time.time(),
        )
        return billing_pb2.RegisterCustomerResponse(customer=convert.customer(customer), api_key=api_key)

    @maps_domain_errors
    async def GetCustomer(
        self, request: billing_pb2.GetCustomerRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Customer:
        return convert.customer(authenticate_customer(self._store, context))
