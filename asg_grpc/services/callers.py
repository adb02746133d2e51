"""Who is calling: one lookup from a call's `authorization: Bearer <token>` metadata to a typed
caller, built once by the core (server.py) and asked by every service.

* `customer(context)`: an API key → `CustomerCaller`. The call spends a token of the key's
  rate limit here, so every customer RPC applies the limit the same way (docs/billing.md).
* `worker(context)`: a worker token → `WorkerCaller`.
* `operator(context)`: the operator token → `OperatorCaller`.

API keys and worker tokens are never stored nor compared: they are hashed (SHA-256) and the
hash is looked up, so timing can reveal at most how much of a hash matched, which says nothing
about any key. The operator token is configuration, not a row: it is compared with
`hmac.compare_digest`. No token, raw or hashed, is ever logged or put in an error message.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from asg_grpc.domain.customers import Customer, environment_of, hash_token
from asg_grpc.domain.errors import RateLimited, Unauthenticated, rate_hint
from asg_grpc.domain.tiers import RateLimit
from asg_grpc.domain.workers import Worker
from asg_grpc.services.ratelimit import KeyLimits
from asg_grpc.store.areas import Customers, Workers

_SCHEME = "bearer "


class CallerStore(Customers, Workers, Protocol):
    """The areas a caller is looked up in: customers and their keys, workers and their tokens."""


@dataclass(frozen=True, slots=True)
class CustomerCaller:
    """A customer calling with one of its API keys."""

    customer_id: str
    tier: str
    key_hash: str = field(repr=False)
    # The key's rate limit, None when this core enforces none (ASG_RATE_LIMIT=off).
    rate_limit: RateLimit | None
    environment: str = "sandbox"  # the key's prefix: a rotated key keeps it
    # The customer's default consensus method (PATCH /v1/customers/me); None: the deployment's.
    consensus_method: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerCaller:
    """A registered labeler calling with its worker token."""

    worker: Worker


@dataclass(frozen=True, slots=True)
class OperatorCaller:
    """Whoever holds the operator token: may register workers and change tiers."""


def parse_bearer(authorization: str | None) -> str:
    """The token of an `authorization` value ("Bearer <token>")."""
    if not authorization:
        raise Unauthenticated("missing api key")
    if not authorization.lower().startswith(_SCHEME):
        raise Unauthenticated("invalid api key")
    token = authorization[len(_SCHEME) :].strip()
    if not token:
        raise Unauthenticated("missing api key")
    return token


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else "?"
    return None


class Callers:
    """The core's one caller lookup: the store for keys and workers, the key limits, and the
    operator token (None: no operator RPCs on this core, they answer UNAUTHENTICATED)."""

    def __init__(self, store: CallerStore, limits: KeyLimits, operator_token: str | None) -> None:
        self._store = store
        self.limits = limits
        self._operator_token = None if operator_token is None else operator_token.encode()

    def customer(self, context: grpc.aio.ServicerContext) -> CustomerCaller:
        """The calling customer; the call counts against its key's rate limit (RateLimited
        when it is spent)."""
        caller = self.customer_of(_authorization(context))
        self.spend(caller)
        return caller

    def customer_of(self, authorization: str | None) -> CustomerCaller:
        """The customer behind an `authorization` value, spending nothing: for a coalesced call
        that carries one caller many times, which then spends once per submission."""
        token = parse_bearer(authorization)
        key_hash = hash_token(token)
        owner = self._store.key_owner(key_hash)
        if owner is None:
            raise Unauthenticated("invalid api key")
        limit = self.limits.limit_for(owner.tier) if self.limits.enabled else None
        return CustomerCaller(
            owner.customer_id, owner.tier, key_hash, limit, environment_of(token), owner.consensus_method
        )

    def spend(self, caller: CustomerCaller) -> None:
        """Count one call of the caller's key; raises RateLimited when it has none left."""
        limit = caller.rate_limit
        if limit is not None:
            try:
                self.limits.take(caller.key_hash, limit)
            except RateLimited as exc:
                hint = rate_hint(caller.tier, limit.per_second, limit.burst, caller.customer_id)
                raise RateLimited(exc.retry_after, hint) from None

    def customer_record(self, context: grpc.aio.ServicerContext) -> Customer:
        """The calling customer's whole record (quota, key hint), for the RPCs that show or
        check it; spends like `customer`."""
        customer = self._store.get_customer(self.customer(context).customer_id)
        if customer is None:  # the key's customer vanished between the two reads
            raise Unauthenticated("invalid api key")
        return customer

    def worker(self, context: grpc.aio.ServicerContext) -> WorkerCaller:
        token = parse_bearer(_authorization(context))
        worker = self._store.worker_for_token(hash_token(token))
        if worker is None:
            raise Unauthenticated("invalid worker token")
        return WorkerCaller(worker)

    def operator(self, context: grpc.aio.ServicerContext) -> OperatorCaller:
        token = parse_bearer(_authorization(context)).encode()
        if self._operator_token is None or not hmac.compare_digest(token, self._operator_token):
            raise Unauthenticated("invalid operator token")
        return OperatorCaller()
