"""DashboardService: the Console's figures, each the caller's own (docs/api.md, Dashboard)."""

from __future__ import annotations

import time
from typing import Protocol

import grpc

from asg_grpc.domain import billing, dashboard
from asg_grpc.domain.tiers import tier_named
from asg_grpc.services.callers import Callers
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Customers, Dashboard
from asg_grpc.v1 import dashboard_pb2, dashboard_pb2_grpc
from asg_grpc.wire import convert


class DashboardStore(Dashboard, Customers, Protocol):
    """The dashboard's counters and task list, and the usage counts billing keeps."""


class DashboardService(dashboard_pb2_grpc.DashboardServiceServicer):
    def __init__(self, store: DashboardStore, settings: Settings, callers: Callers) -> None:
        self._store = store
        self._tiers = settings.tiers
        self._callers = callers

    async def GetOverview(
        self, request: dashboard_pb2.GetOverviewRequest, context: grpc.aio.ServicerContext
    ) -> dashboard_pb2.Overview:
        customer_id = self._callers.customer(context).customer_id
        now = time.time()
        counters = self._store.dashboard_counters(customer_id, dashboard.window_days(now)[0])
        o = dashboard.overview(counters, now)
        return dashboard_pb2.Overview(
            by_status=[dashboard_pb2.StatusCount(status=s, count=n) for s, n in o.by_status],
            total=o.total,
            avg_confidence=o.avg_confidence,
            avg_settlement_seconds=o.avg_settlement_seconds,
            tasks_per_day=[dashboard_pb2.DayCount(day=d, count=n) for d, n in o.tasks_per_day],
        )

    async def ListDashboardTasks(
        self, request: dashboard_pb2.ListDashboardTasksRequest, context: grpc.aio.ServicerContext
    ) -> dashboard_pb2.DashboardTaskPage:
        customer_id = self._callers.customer(context).customer_id
        query = dashboard.task_query(
            request.page if request.HasField("page") else None,
            request.per_page if request.HasField("per_page") else None,
            request.status,
            request.sort,
        )
        page = self._store.dashboard_tasks(customer_id, query)
        return dashboard_pb2.DashboardTaskPage(
            tasks=[
                dashboard_pb2.DashboardTask(
                    task_id=r.task_id,
                    status=r.status.value,
                    task_type=r.task_type,
                    consensus_label=r.consensus_label,
                    confidence=r.confidence,
                    bsv_txid=r.bsv_txid,
                    created_at=convert.timestamp(r.created_at),
                )
                for r in page.rows
            ],
            page=query.page,
            per_page=query.per_page,
            total=page.total,
            pages=dashboard.page_count(page.total, query.per_page),
        )

    async def GetQuality(
        self, request: dashboard_pb2.GetQualityRequest, context: grpc.aio.ServicerContext
    ) -> dashboard_pb2.Quality:
        customer_id = self._callers.customer(context).customer_id
        # Per-day counts are not part of quality: ask for none (a day after any there is).
        q = dashboard.quality(self._store.dashboard_counters(customer_id, "9999-12-31"))
        return dashboard_pb2.Quality(
            decided=q.decided,
            perfect_agreement=q.perfect_agreement,
            perfect_agreement_rate=q.perfect_agreement_rate,
            confidence_histogram=q.confidence_histogram,
            label_distribution=[
                dashboard_pb2.LabelCount(label=lb, count=n) for lb, n in q.label_distribution
            ],
        )

    async def GetDashboardUsage(
        self, request: dashboard_pb2.GetDashboardUsageRequest, context: grpc.aio.ServicerContext
    ) -> dashboard_pb2.DashboardUsage:
        customer = self._callers.customer_record(context)
        tier = tier_named(self._tiers, customer.tier)
        month = billing.Month.of(time.time())
        counts = self._store.usage_counts(customer.customer_id, month.start, month.end)
        usage = billing.price(counts, month, tier, lambda name: tier_named(self._tiers, name))
        enforced = self._callers.limits.enabled
        return dashboard_pb2.DashboardUsage(
            customer=convert.customer(customer, tier, enforced=enforced), usage=convert.usage(usage)
        )
