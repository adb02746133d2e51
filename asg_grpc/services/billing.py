"""BillingService: registration, the customer's own record (tier, quota, key hint), an
operator's tier change, and the customer's usage and invoices (docs/billing.md)."""

from __future__ import annotations

import time
from collections import OrderedDict

import grpc

from asg_grpc.domain import billing
from asg_grpc.domain.customers import (
    Customer,
    hash_token,
    key_grace,
    key_hint,
    new_api_key,
    validate_registration,
)
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import check_consensus_method
from asg_grpc.domain.tiers import SANDBOX, Tier, tier_named
from asg_grpc.services.callers import Callers
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Customers
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc
from asg_grpc.wire import convert

# A month is closed this long after its end: decisions are stamped with the time their batch
# began, a moment before it is written.
CLOSED_AFTER = 3600.0
MAX_CLOSED = 100_000  # (customer, month) counts kept, least recently read dropped first


class BillingService(billing_pb2_grpc.BillingServiceServicer):
    def __init__(
        self,
        store: Customers,
        settings: Settings,
        callers: Callers,
    ) -> None:
        self._store = store
        self._tiers = settings.tiers
        self._callers = callers
        # What customers/me reports; the limit itself is spent by `callers`.
        self._enforced = callers.limits.enabled
        self._closed: OrderedDict[tuple[str, billing.Month], list[billing.UsageCounts]] = OrderedDict()

    def _tier(self, name: str) -> Tier:
        """A customer's tier; one no longer configured is priced and limited as sandbox."""
        return tier_named(self._tiers, name)

    def _customer(self, customer: Customer) -> billing_pb2.Customer:
        return convert.customer(customer, self._tier(customer.tier), enforced=self._enforced)

    async def RegisterCustomer(
        self, request: billing_pb2.RegisterCustomerRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.RegisterCustomerResponse:
        registration = validate_registration(request.name, request.email)
        api_key = new_api_key("sandbox")
        customer = self._store.create_customer(
            registration,
            tier=SANDBOX,
            label_quota=self._tiers[SANDBOX].label_quota,
            key_hash=hash_token(api_key),
            key_hint=key_hint(api_key),
            now=time.time(),
        )
        return billing_pb2.RegisterCustomerResponse(customer=self._customer(customer), api_key=api_key)

    async def GetCustomer(
        self, request: billing_pb2.GetCustomerRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Customer:
        return self._customer(self._callers.customer_record(context))

    async def UpdateCustomer(
        self, request: billing_pb2.UpdateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Customer:
        customer = self._callers.customer_record(context)
        if request.HasField("consensus_method"):
            method = request.consensus_method
            customer = self._store.set_customer_consensus(
                customer.customer_id, check_consensus_method(method) if method else None
            )
        return self._customer(customer)

    async def SetCustomerTier(
        self, request: billing_pb2.SetCustomerTierRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Customer:
        self._callers.operator(context)
        tier = self._tiers.get(request.tier)
        if tier is None:
            raise ValidationError("tier", f"must be one of {', '.join(sorted(self._tiers))}")
        customer = self._store.set_customer_tier(request.customer_id, tier.name, tier.label_quota)
        return self._customer(customer)

    async def GetUsage(
        self, request: billing_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.Usage:
        customer = self._callers.customer_record(context)
        month = billing.parse_month(request.month, time.time())
        return convert.usage(self._usage(customer.customer_id, month, self._tier(customer.tier)))

    async def ListInvoices(
        self, request: billing_pb2.ListInvoicesRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.ListInvoicesResponse:
        customer = self._callers.customer_record(context)
        now = time.time()
        current = billing.Month.of(now)
        first_at = self._store.first_task_at(customer.customer_id)
        first = current if first_at is None else min(billing.Month.of(first_at), current)
        tier = self._tier(customer.tier)
        invoices = [
            billing.Invoice(
                self._usage(customer.customer_id, month, tier), billing.invoice_status(month, now)
            )
            for month in reversed(billing.months_between(first, current))
        ]
        return billing_pb2.ListInvoicesResponse(invoices=[convert.invoice(i) for i in invoices])

    async def RotateKey(
        self, request: billing_pb2.RotateKeyRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.RotateKeyResponse:
        grace = key_grace(request.grace_seconds if request.HasField("grace_seconds") else None)
        caller = self._callers.customer(context)
        api_key = new_api_key(caller.environment)
        now = time.time()
        new, previous = self._store.rotate_key(
            caller.key_hash, hash_token(api_key), key_hint(api_key), now, now + grace
        )
        return billing_pb2.RotateKeyResponse(
            api_key=api_key, key=convert.api_key(new), previous_key=convert.api_key(previous)
        )

    async def ListKeys(
        self, request: billing_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.ListKeysResponse:
        caller = self._callers.customer(context)
        keys = self._store.active_keys(caller.customer_id, time.time())
        return billing_pb2.ListKeysResponse(keys=[convert.api_key(k) for k in keys])

    def _usage(self, customer_id: str, month: billing.Month, tier: Tier) -> billing.Usage:
        return billing.price(self._counts(customer_id, month), month, tier, self._tier)

    def _counts(self, customer_id: str, month: billing.Month) -> list[billing.UsageCounts]:
        """A closed month's counts never change (a task is created once and decided once), so
        they are kept: a list of invoices then reads the store for the recent months only."""
        key = (customer_id, month)
        counts = self._closed.get(key)
        if counts is not None:
            self._closed.move_to_end(key)
            return counts
        counts = self._store.usage_counts(customer_id, month.start, month.end)
        if time.time() > month.end + CLOSED_AFTER:
            self._closed[key] = counts
            if len(self._closed) > MAX_CLOSED:
                self._closed.popitem(last=False)
        return counts
