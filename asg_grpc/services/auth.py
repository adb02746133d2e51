"""Who is calling: the customer behind `authorization: Bearer <api key>` metadata.

The raw key is never stored nor compared: it is hashed (SHA-256) and the hash is looked up.
Timing can then reveal at most how much of a hash matched, which says nothing about any key.
"""

from __future__ import annotations

import grpc

from asg_grpc.domain.customers import Customer, hash_token
from asg_grpc.domain.errors import Unauthenticated
from asg_grpc.store import Store

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


def customer_id_for(store: Store, authorization: str | None) -> str:
    """The customer id behind an `authorization` value."""
    customer_id = store.customer_id_for_key(hash_token(parse_bearer(authorization)))
    if customer_id is None:
        raise Unauthenticated("invalid api key")
    return customer_id


def authenticate(store: Store, context: grpc.aio.ServicerContext) -> str:
    """The caller's customer id."""
    return customer_id_for(store, _authorization(context))


def authenticate_customer(store: Store, context: grpc.aio.ServicerContext) -> Customer:
    """The caller's whole customer record."""
    customer = store.customer_for_key(hash_token(bearer_token(context)))
    if customer is None:
        raise Unauthenticated("invalid api key")
    return customer
