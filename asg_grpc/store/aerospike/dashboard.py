"""The dashboard's and billing's reads on Aerospike, from the counter records of counters.py
(and, for the task list, the customer's tasks through the `owner` index)."""

from __future__ import annotations

from typing import Any

from aerospike import predicates

from asg_grpc.domain.billing import UsageCounts
from asg_grpc.domain.dashboard import Counters, TaskQuery, TaskRow, TaskRows
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.store.aerospike.connection import AerospikeUrl
from asg_grpc.store.aerospike.counters import Counts
from asg_grpc.store.aerospike.records import Records
from asg_grpc.store.aerospike.records import query as query_records


class AerospikeDashboard:
    """dashboard_counters, dashboard_tasks, usage_counts and first_task_at of the Store."""

    def __init__(self, client: Any, url: AerospikeUrl) -> None:
        self._drecords = records = Records(client, url.namespace)
        self._dtasks = url.set_prefix + "tasks"
        self._counts = Counts(records, url)

    def dashboard_counters(self, customer_id: str, since_day: str) -> Counters:
        return self._counts.counters(customer_id, since_day)

    def status_totals(self) -> dict[str, int]:
        return self._counts.status_totals()

    def dashboard_tasks(self, customer_id: str, query: TaskQuery) -> TaskRows:
        """The total from the counters (as on SQLite); the page by the customer's sequence,
        reading the customer's tasks through the index (the gap list_tasks has too)."""
        status = None if query.status is None else query.status.value
        total = self._counts.status_total(customer_id, status)
        if query.offset >= total:
            return TaskRows([], total)
        rows = query_records(self._drecords, self._dtasks, predicates.equals("owner", customer_id))
        rows = [r for r in rows if status is None or r["status"] == status]
        rows.sort(key=lambda r: r["seq"], reverse=query.newest_first)
        page = rows[query.offset : query.offset + query.per_page]
        return TaskRows(
            [
                TaskRow(
                    r["tid"],
                    TaskStatus(r["status"]),
                    r["type"],
                    r.get("label"),
                    r.get("conf") if "decided" in r else None,
                    r.get("txid") if "settled" in r else None,
                    r["created"],
                )
                for r in page
            ],
            total,
        )

    def usage_counts(self, customer_id: str, start: float, end: float) -> list[UsageCounts]:
        return self._counts.usage(customer_id, start, end)

    def first_task_at(self, customer_id: str) -> float | None:
        return self._counts.first_task_at(customer_id)
