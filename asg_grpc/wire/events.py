"""Webhook event bodies: domain values → the JSON a delivery carries, rendered once.

`data` is "the object the REST API returns" for the event's subject (docs/webhooks.md). The
gateway renders that object from the proto it receives (asg_common/rest_json.py); here the core
renders it straight from the domain, with no proto in between. The two must agree byte for byte:
tests/webhooks/test_event_bodies.py holds them to it (docs/wire.md says why there are two).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Protocol

import orjson

from asg_grpc.domain.jobs import Job
from asg_grpc.domain.tasks import LabelRecord, Task
from asg_grpc.store.areas import Jobs, Tasks
from asg_grpc.store.webhook_records import EventRecord


class EventSubjects(Tasks, Jobs, Protocol):
    """Where an event's subject (a task with its labels, a job) is read when it is rendered."""


def iso(seconds: float) -> str:
    """RFC 3339 in UTC with second precision (the REST API's timestamps)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def _label_spec(question: str, options: tuple[str, ...]) -> dict[str, Any]:
    return {"question": question, "options": list(options)}


def task_result(t: Task, labels: list[LabelRecord]) -> dict[str, Any]:
    """GET /v1/tasks/{id}/result's 200 body. Undecided fields read as the API shows them: a
    count of 0, a confidence of 0.0 and the epoch for `decided_at`."""
    verdict, settlement = t.verdict, t.settlement
    body: dict[str, Any] = {
        "task_id": t.task_id,
        "status": t.status.value,
        "consensus_label": None if verdict is None else verdict.label,
        "confidence": 0.0 if verdict is None else float(verdict.confidence),
        "worker_count": 0 if verdict is None else verdict.worker_count,
        "agreement_count": 0 if verdict is None else verdict.agreement_count,
        "label_spec": _label_spec(t.spec.question, t.spec.options),
        "labels": [
            {"worker_id": r.worker_id, "option": r.option, "created_at": iso(r.created_at)} for r in labels
        ],
        "decided_at": iso(0 if verdict is None else verdict.decided_at),
        "settlement": None
        if settlement is None
        else {
            "bsv_txid": settlement.bsv_txid,
            "total_cost_sats": settlement.total_cost_sats,
            "settled_at": iso(settlement.settled_at),
        },
    }
    if verdict is not None and verdict.failure_reason is not None:
        body["failure_reason"] = verdict.failure_reason
    return body


def job(j: Job) -> dict[str, Any]:
    """GET /v1/jobs/{id}'s body."""
    spec = j.spec
    return {
        "job_id": j.job_id,
        "status": j.status.value,
        "manifest_url": spec.manifest_url,
        "type": spec.task_type,
        "label_spec": _label_spec(spec.question, spec.options),
        "consensus_threshold": spec.consensus_threshold,
        "callback_url": spec.callback_url,
        "counts": asdict(j.counts),  # the API's names and order (the parity test holds it)
        "errors": [{"line": line, "error": error} for line, error in j.errors],
        "failure_reason": j.failure_reason,
        "created_at": iso(j.created_at),
        "updated_at": iso(j.updated_at),
        "completed_at": None if j.completed_at is None else iso(j.completed_at),
        "labor": spec.labor,
    }


def event_data(store: EventSubjects, event: EventRecord) -> dict[str, Any] | None:
    """The object the REST API returns for the event's subject, None when there is none."""
    if event.event_type.startswith("task."):
        task = store.get_task(event.customer_id, event.subject_id)
        return None if task is None else task_result(task, store.task_labels(task.task_id))
    if event.event_type.startswith("job."):
        found = store.get_job(event.customer_id, event.subject_id)
        return None if found is None else job(found)
    return None


def render(event: EventRecord, data: dict[str, Any]) -> bytes:
    """The delivery body: {id, type, created_at, data}."""
    return orjson.dumps(
        {"id": event.event_id, "type": event.event_type, "created_at": iso(event.created_at), "data": data}
    )
