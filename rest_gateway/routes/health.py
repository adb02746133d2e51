"""Health — GET /v1/health (no auth): the gateway is up and the core answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from rest_gateway import models
from rest_gateway.core import core
from rest_gateway.errors import UNAVAILABLE_RETRY_AFTER
from rest_gateway.openapi import RETRY_AFTER
from rest_gateway.responses import json

router = APIRouter(tags=["system"])


@router.get(
    "/v1/health",
    responses={
        503: {"model": models.Health, "description": "The core does not answer", "headers": RETRY_AFTER}
    },
    openapi_extra={"security": []},
    response_model=models.Health,
)
async def health(request: Request) -> Response:
    if await core(request).serving():
        return json({"ok": True, "service": "asg-gateway"})
    body = json({"ok": False, "service": "asg-gateway", "error": "core unavailable"}, 503)
    body.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return body
