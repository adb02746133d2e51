"""Health — GET /v1/health (no auth): the gateway is up and the core answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from rest_gateway.core import core
from rest_gateway.responses import json

router = APIRouter(tags=["system"])


@router.get("/v1/health")
async def health(request: Request) -> Response:
    if await core(request).serving():
        return json({"ok": True, "service": "asg-gateway"})
    return json({"ok": False, "service": "asg-gateway", "error": "core unavailable"}, 503)
