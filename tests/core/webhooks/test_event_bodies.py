"""A webhook's `data` is the object the REST API returns for its subject (docs/webhooks.md).

The core renders it from the domain (asg_grpc/wire/events.py), the gateway from the proto it
receives (asg_common/rest_json.py); here both render the same values and must give the same
bytes, for every shape a task or a job takes."""

from __future__ import annotations

import orjson
import pytest

from asg_common import rest_json
from asg_grpc.domain.jobs import Job, JobCounts, JobSpec, JobStatus
from asg_grpc.domain.tasks import LabelRecord, Settlement, Task, TaskSpec, TaskStatus, Verdict
from asg_grpc.wire import convert, events

T0 = 1_775_736_000.75  # fractions of a second are dropped by both
SPEC = TaskSpec("classification", "https://example.com/1.jpg", "Cat?", ("cat", "dog"), 3, None, None)
LABELS = [
    LabelRecord("wkr_a", "cat", T0 + 1.5),
    LabelRecord("wkr_b", "dog", T0 + 2),
    LabelRecord("wkr_c", "cat", T0 + 3),
]
VERDICT = Verdict("cat", 2 / 3, 3, 2, None, T0 + 3.9)

TASKS = {
    "pending": (Task("tsk_1", "cus_1", TaskStatus.PENDING, SPEC, None, T0, T0), []),
    "verified": (Task("tsk_2", "cus_1", TaskStatus.VERIFIED, SPEC, "bat_1", T0, T0 + 4, VERDICT), LABELS),
    "settled": (
        Task(
            "tsk_3",
            "cus_1",
            TaskStatus.SETTLED,
            SPEC,
            None,
            T0,
            T0 + 9,
            VERDICT,
            Settlement("ab" * 32, 1000, T0 + 8.2),
        ),
        LABELS,
    ),
    "no_consensus": (
        Task(
            "tsk_4",
            "cus_1",
            TaskStatus.FAILED,
            SPEC,
            None,
            T0,
            T0 + 5,
            Verdict(None, 0.5, 6, 3, "no_consensus", T0 + 5),
        ),
        LABELS,
    ),
    "cancelled": (Task("tsk_5", "cus_1", TaskStatus.CANCELLED, SPEC, None, T0, T0 + 1), LABELS[:1]),
}


@pytest.mark.parametrize("name", TASKS)
def test_task_event_data_is_the_result_body_byte_for_byte(name: str) -> None:
    task, labels = TASKS[name]
    core = orjson.dumps(events.task_result(task, labels))
    gateway = orjson.dumps(rest_json.result(convert.task_result(task, labels)))
    assert core == gateway


JOB_SPEC = JobSpec("https://example.com/m.jsonl", "classification", "Cat?", ("cat", "dog"), 3, None)
JOBS = {
    "labeling": Job(
        "job_1", "cus_1", JobStatus.LABELING, JOB_SPEC, JobCounts(lines=3), (), None, T0, T0 + 1, None
    ),
    "completed": Job(
        "job_2",
        "cus_1",
        JobStatus.COMPLETED,
        JobSpec("s3://b/k.jsonl", "classification", "Cat?", ("cat", "dog"), 5, "https://example.com/hook"),
        JobCounts(4, 3, 1, 1, 2, 1, 0, 0, 1),
        ((2, "data_url must be an https URL"),),
        None,
        T0,
        T0 + 7,
        T0 + 7.5,
    ),
    "failed": Job(
        "job_3",
        "cus_1",
        JobStatus.FAILED,
        JOB_SPEC,
        JobCounts(),
        (),
        "manifest_url answered 404",
        T0,
        T0 + 2,
        T0 + 2,
    ),
}


@pytest.mark.parametrize("name", JOBS)
def test_job_event_data_is_the_job_body_byte_for_byte(name: str) -> None:
    job = JOBS[name]
    assert orjson.dumps(events.job(job)) == orjson.dumps(rest_json.job(convert.job(job)))
