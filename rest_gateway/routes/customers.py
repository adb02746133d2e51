"""Register — POST /v1/customers; Profile — GET /v1/customers/me; key rotation and hints —
/v1/customers/me/keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import billing_pb2
from rest_gateway import decode
from rest_gateway.core import call_metadata, core
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/customers", tags=["customers"])

KEY_MESSAGE = "Store this API key securely — it cannot be retrieved again."


@router.post("", status_code=201)
async def register_customer(request: Request) -> Response:
    message = decode.register_customer(await decode.json_object(request, decode.SMALL_BODY))
    client = core(request)
    reply = await client.billing.RegisterCustomer(
        message, metadata=call_metadata(request), timeout=client.timeout
    )
    return json(
        {
            "customer_id": reply.customer.customer_id,
            "api_key": reply.api_key,
            "tier": reply.customer.tier,
            "label_quota": reply.customer.label_quota,
            "message": KEY_MESSAGE,
        },
        201,
    )


@router.get("/me")
async def me(request: Request) -> Response:
    client = core(request)
    reply = await client.billing.GetCustomer(
        billing_pb2.GetCustomerRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json(rest_json.customer(reply))


@router.post("/me/keys", status_code=201)
async def rotate_key(request: Request) -> Response:
    message = decode.rotate_key(await decode.json_object(request, decode.SMALL_BODY, required=False))
    client = core(request)
    reply = await client.billing.RotateKey(message, metadata=call_metadata(request), timeout=client.timeout)
    return json(
        {
            "api_key": reply.api_key,
            **rest_json.api_key(reply.key),
            "previous_key": rest_json.api_key(reply.previous_key),
            "message": KEY_MESSAGE,
        },
        201,
    )


@router.get("/me/keys")
async def list_keys(request: Request) -> Response:
    client = core(request)
    reply = await client.billing.ListKeys(
        billing_pb2.ListKeysRequest(), metadata=call_metadata(request), timeout=client.timeout
    )
    return json({"keys": [rest_json.api_key(k) for k in reply.keys]})
