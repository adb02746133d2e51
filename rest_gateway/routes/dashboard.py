"""Dashboard — overview, task list, quality, usage: what the Console shows (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import dashboard_pb2
from rest_gateway import models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, errors
from rest_gateway.responses import json

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"], responses=errors(*AUTHED))

# The core's bounds (asg_grpc/domain/dashboard.py), declared here for the OpenAPI and the 400.
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 100


@router.get("/overview", response_model=models.DashboardOverview)
async def overview(call: Core) -> Response:
    reply = await call(call.client.dashboard.GetOverview, dashboard_pb2.GetOverviewRequest())
    return json(rest_json.dashboard_overview(reply))


@router.get("/tasks", response_model=models.DashboardTaskPage)
async def tasks(
    call: Core,
    page: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="1-based (default 1)")] = None,
    per_page: Annotated[
        int | None, Query(ge=1, le=MAX_PER_PAGE, description=f"1 to {MAX_PER_PAGE} (default 25)")
    ] = None,
    status: Annotated[str, Query(description="One status; empty for all")] = "",
    sort: Annotated[str, Query(description="created_at_desc (default) or created_at_asc")] = "",
) -> Response:
    """The core checks `status` and `sort` (400 naming them)."""
    request = dashboard_pb2.ListDashboardTasksRequest(page=page, per_page=per_page, status=status, sort=sort)
    reply = await call(call.client.dashboard.ListDashboardTasks, request)
    return json(rest_json.dashboard_tasks(reply))


@router.get("/quality", response_model=models.DashboardQuality)
async def quality(call: Core) -> Response:
    reply = await call(call.client.dashboard.GetQuality, dashboard_pb2.GetQualityRequest())
    return json(rest_json.dashboard_quality(reply))


@router.get("/usage", response_model=models.DashboardUsage)
async def usage(call: Core) -> Response:
    reply = await call(call.client.dashboard.GetDashboardUsage, dashboard_pb2.GetDashboardUsageRequest())
    return json(rest_json.dashboard_usage(reply))
