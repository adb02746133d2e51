"""Who is calling: the customer behind `authorization: Bearer <api key>` metadata.

The raw key is never stored nor compared: it is hashed (SHA-256) and the hash is looked up.
Timing can then reveal at most how much of a hash matched, which says nothing about any key.
Given the core's `KeyLimits`, a call also spends a token of its key's rate limit here, so every
service that authenticates a customer applies the limit the same way (docs/billing.md).
"""

from __future__ import annotations

import grpc

from asg_grpc.domain.customers import Customer, hash_token
from asg_grpc.domain.errors import Unauthenticated
from asg_grpc.services.ratelimit import KeyLimits
from asg_grpc.store import Store
from asg_grpc.store.base import KeyOwner

_SCHEME = "bearer "


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


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    """The token of the call's `authorization` metadata."""
    return parse_bearer(_authorization(context))


def customer_id_for(store: Store, authorization: str | None, limits: KeyLimits | None = None) -> str:
    """The customer id behind an `authorization` value; with `limits`, the call counts
    against the key's rate limit (RateLimited when it is spent)."""
    if limits is None or not limits.enabled:
        customer_id = store.customer_id_for_key(hash_token(parse_bearer(authorization)))
        if customer_id is None:
            raise Unauthenticated("invalid api key")
        return customer_id
    key_hash, owner = identify(store, authorization)
    limits.check(key_hash, owner.tier)
    return owner.customer_id


def identify(store: Store, authorization: str | None) -> tuple[str, KeyOwner]:
    """The key's hash and owner, for callers that apply the rate limit themselves."""
    key_hash = hash_token(parse_bearer(authorization))
    owner = store.key_owner(key_hash)
    if owner is None:
        raise Unauthenticated("invalid api key")
    return key_hash, owner


def authenticate(store: Store, context: grpc.aio.ServicerContext, limits: KeyLimits | None = None) -> str:
    """The caller's customer id (see customer_id_for)."""
    return customer_id_for(store, _authorization(context), limits)


def authenticate_customer(
    store: Store, context: grpc.aio.ServicerContext, limits: KeyLimits | None = None
) -> Customer:
    """The caller's whole customer record (see customer_id_for)."""
    key_hash = hash_token(bearer_token(context))
    customer = store.customer_for_key(key_hash)
    if customer is None:
        raise Unauthenticated("invalid api key")
    if limits is not None:
        limits.check(key_hash, customer.tier)
    return customer
