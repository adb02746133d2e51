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


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            if not isinstance(value, str) or not value.lower().startswith(_SCHEME):
                raise Unauthenticated("invalid api key")
            token = value[len(_SCHEME) :].strip()
            if token:
                return token
            break
    raise Unauthenticated("missing api key")


def authenticate(store: Store, context: grpc.aio.ServicerContext) -> str:
    """The caller's customer id."""
    customer_id = store.customer_id_for_key(hash_token(bearer_token(context)))
    if customer_id is None:
        raise Unauthenticated("invalid api key")
    return customer_id


def authenticate_customer(store: Store, context: grpc.aio.ServicerContext) -> Customer:
    """The caller's whole customer record."""
    customer = store.customer_for_key(hash_token(bearer_token(context)))
    if customer is None:
        raise Unauthenticated("invalid api key")
    return customer
