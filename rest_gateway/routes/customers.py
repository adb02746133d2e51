"""Register — POST /v1/customers; Profile — GET /v1/customers/me, its settings — PATCH
/v1/customers/me; key rotation and hints — /v1/customers/me/keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import billing_pb2
from rest_gateway import decode, models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, BODY, body, errors
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/customers", tags=["customers"])

KEY_MESSAGE = "Store this API key securely — it cannot be retrieved again."


@router.post(
    "",
    status_code=201,
    responses=errors(*BODY, 409, 503),
    openapi_extra={**body(models.CustomerInput), "security": []},
    response_model=models.CustomerCreated,
)
async def register_customer(request: Request, call: Core) -> Response:
    message = (await decode.CUSTOMER.read(request)).to_proto()
    reply = await call(call.client.billing.RegisterCustomer, message)
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


@router.get(
    "/me",
    responses=errors(*AUTHED),
    response_model=models.Customer,
)
async def me(call: Core) -> Response:
    reply = await call(call.client.billing.GetCustomer, billing_pb2.GetCustomerRequest())
    return json(rest_json.customer(reply))


@router.patch(
    "/me",
    openapi_extra=body(models.CustomerUpdate),
    responses=errors(*BODY, 401, 429, 503),
    response_model=models.Customer,
)
async def update_me(request: Request, call: Core) -> Response:
    message = (await decode.CUSTOMER_UPDATE.read(request)).to_proto()
    reply = await call(call.client.billing.UpdateCustomer, message)
    return json(rest_json.customer(reply))


@router.post(
    "/me/keys",
    status_code=201,
    openapi_extra=body(models.KeyRotation, required=False),
    responses=errors(*BODY, 401, 409, 429, 503),
)
async def rotate_key(request: Request, call: Core) -> Response:
    message = (await decode.KEY_ROTATION.read(request)).to_proto()
    reply = await call(call.client.billing.RotateKey, message)
    return json(
        {
            "api_key": reply.api_key,
            **rest_json.api_key(reply.key),
            "previous_key": rest_json.api_key(reply.previous_key),
            "message": KEY_MESSAGE,
        },
        201,
    )


@router.get("/me/keys", responses=errors(*AUTHED))
async def list_keys(call: Core) -> Response:
    reply = await call(call.client.billing.ListKeys, billing_pb2.ListKeysRequest())
    return json({"keys": [rest_json.api_key(k) for k in reply.keys]})
