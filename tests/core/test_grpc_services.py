"""The core's gRPC services over loopback, as a gRPC client (not the gateway) sees them: the
generated stubs from `asg_grpc.v1`, `authorization` metadata, status codes and details.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from asg_grpc.devstack import Stack
from asg_grpc.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    tasks_pb2,
    tasks_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

Metadata = tuple[tuple[str, str], ...]
SPEC = common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"])


@pytest.fixture(scope="module")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_addr) as ch:
        yield ch


@pytest.fixture(scope="module")
def tasks(channel: grpc.Channel) -> tasks_pb2_grpc.TaskServiceStub:
    return tasks_pb2_grpc.TaskServiceStub(channel)


@pytest.fixture(scope="module")
def billing(channel: grpc.Channel) -> billing_pb2_grpc.BillingServiceStub:
    return billing_pb2_grpc.BillingServiceStub(channel)


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def new_customer(billing: billing_pb2_grpc.BillingServiceStub) -> billing_pb2.RegisterCustomerResponse:
    return billing.RegisterCustomer(
        billing_pb2.RegisterCustomerRequest(name="Grpc", email=unique_email()), timeout=10
    )


@pytest.fixture
def registered(billing: billing_pb2_grpc.BillingServiceStub) -> billing_pb2.RegisterCustomerResponse:
    return new_customer(billing)


@pytest.fixture
def md(registered: billing_pb2.RegisterCustomerResponse) -> Metadata:
    return (("authorization", f"Bearer {registered.api_key}"),)


def task_input(n: int = 0, **fields: Any) -> tasks_pb2.TaskInput:
    values: dict[str, Any] = {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/{n}.jpg",
        "label_spec": SPEC,
        **fields,
    }
    return tasks_pb2.TaskInput(**{k: v for k, v in values.items() if v is not None})


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# BillingService -------------------------------------------------------------------------


def test_register_customer_returns_a_sandbox_key(billing: billing_pb2_grpc.BillingServiceStub) -> None:
    email = unique_email()

    reply = billing.RegisterCustomer(billing_pb2.RegisterCustomerRequest(name="Demo", email=email))

    assert reply.api_key.startswith("sk_sandbox_")
    c = reply.customer
    assert c.customer_id.startswith("cust_")
    assert (c.name, c.email, c.tier) == ("Demo", email, "sandbox")
    assert (c.label_quota, c.labels_reserved, c.quota_remaining) == (500, 0, 500)
    assert c.key_hint == f"{reply.api_key[:7]}…{reply.api_key[-4:]}"
    assert reply.api_key not in str(c)


def test_register_same_email_is_already_exists(billing: billing_pb2_grpc.BillingServiceStub) -> None:
    email = unique_email()
    billing.RegisterCustomer(billing_pb2.RegisterCustomerRequest(name="One", email=email))

    err = rpc_error(
        lambda: billing.RegisterCustomer(billing_pb2.RegisterCustomerRequest(name="Two", email=email.upper()))
    )

    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "email already registered"


@pytest.mark.parametrize(
    ("name", "email", "field"),
    [("", "x@example.com", "name"), ("Demo", "", "email"), ("Demo", "not-an-email", "email")],
)
def test_register_bad_input_is_invalid_argument_naming_the_field(
    billing: billing_pb2_grpc.BillingServiceStub, name: str, email: str, field: str
) -> None:
    err = rpc_error(
        lambda: billing.RegisterCustomer(billing_pb2.RegisterCustomerRequest(name=name, email=email))
    )

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field} ")


def test_get_customer_is_the_callers_own_record(
    billing: billing_pb2_grpc.BillingServiceStub,
    registered: billing_pb2.RegisterCustomerResponse,
    md: Metadata,
) -> None:
    reply = billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=md)

    assert reply == registered.customer


@pytest.mark.parametrize(
    ("metadata", "details"),
    [
        pytest.param((), "missing api key", id="no-metadata"),
        pytest.param((("authorization", "Bearer "),), "missing api key", id="empty-bearer"),
        pytest.param((("authorization", "Bearer sk_sandbox_nope"),), "invalid api key",
                     id="unknown-key"),
        pytest.param((("authorization", "Token abc"),), "invalid api key", id="other-scheme"),
    ],
)  # fmt: skip
def test_get_customer_without_a_valid_key_is_unauthenticated(
    billing: billing_pb2_grpc.BillingServiceStub, metadata: Metadata, details: str
) -> None:
    err = rpc_error(lambda: billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=metadata))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == details


def test_bearer_scheme_is_case_insensitive(
    billing: billing_pb2_grpc.BillingServiceStub, registered: billing_pb2.RegisterCustomerResponse
) -> None:
    md = (("authorization", f"bearer {registered.api_key}"),)

    assert billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=md).customer_id == (
        registered.customer.customer_id
    )


# TaskService ----------------------------------------------------------------------------


def test_submit_get_and_result(tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata) -> None:
    submitted = tasks.SubmitTask(
        tasks_pb2.SubmitTaskRequest(task=task_input(consensus_threshold=4)), metadata=md
    )

    t = submitted.task
    assert submitted.idempotent is False
    assert t.task_id.startswith("tsk_")
    assert t.status == common_pb2.TASK_STATUS_PENDING
    assert (t.task_type, t.data_url, t.consensus_threshold) == (
        "image_classification",
        "https://cdn.example.com/0.jpg",
        4,
    )
    assert t.label_spec == SPEC
    assert not t.HasField("batch_id") and not t.HasField("idempotency_key")
    assert t.created_at.seconds > 1_700_000_000
    assert tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=t.task_id), metadata=md) == t
    result = tasks.GetTaskResult(tasks_pb2.GetTaskResultRequest(task_id=t.task_id), metadata=md)
    assert (result.task_id, result.status, result.decided) == (
        t.task_id,
        common_pb2.TASK_STATUS_PENDING,
        False,
    )
    assert result.label_spec == SPEC


def test_submit_applies_the_default_threshold(tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata) -> None:
    reply = tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=task_input()), metadata=md)

    assert reply.task.consensus_threshold == 3


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"type": None}, "type", id="type-missing"),
        pytest.param({"type": "video"}, "type", id="type-unknown"),
        pytest.param({"data_url": None}, "data_url", id="data_url-missing"),
        pytest.param({"data_url": "http://ex.com/a"}, "data_url", id="data_url-http"),
        pytest.param({"label_spec": None}, "label_spec", id="label_spec-missing"),
        pytest.param({"label_spec": common_pb2.LabelSpec(options=["a", "b"])},
                     "label_spec.question", id="question-missing"),
        pytest.param({"label_spec": common_pb2.LabelSpec(question="Q")}, "label_spec.options",
                     id="options-missing"),
        pytest.param({"label_spec": common_pb2.LabelSpec(question="Q", options=["a", "a"])},
                     "label_spec.options", id="options-duplicate"),
        pytest.param({"label_spec": common_pb2.LabelSpec(question="Q", options=["a", ""])},
                     "label_spec.options[1]", id="option-empty"),
        pytest.param({"consensus_threshold": 1}, "consensus_threshold", id="threshold-1"),
        pytest.param({"consensus_threshold": 11}, "consensus_threshold", id="threshold-11"),
        pytest.param({"consensus_threshold": 2**40}, "consensus_threshold", id="threshold-huge"),
        pytest.param({"idempotency_key": ""}, "idempotency_key", id="key-empty"),
    ],
)  # fmt: skip
def test_submit_bad_task_is_invalid_argument_naming_the_field(
    tasks: tasks_pb2_grpc.TaskServiceStub,
    billing: billing_pb2_grpc.BillingServiceStub,
    md: Metadata,
    fields: dict[str, Any],
    field: str,
) -> None:
    err = rpc_error(
        lambda: tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=task_input(**fields)), metadata=md)
    )

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field} "), err.details()
    assert billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=md).labels_reserved == 0


def test_submit_without_a_task_is_invalid_argument(
    tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata
) -> None:
    err = rpc_error(lambda: tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(), metadata=md))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "type is required"


def test_idempotent_replay_and_conflict(tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata) -> None:
    request = tasks_pb2.SubmitTaskRequest(task=task_input(idempotency_key="g-1"))
    first = tasks.SubmitTask(request, metadata=md)

    replay = tasks.SubmitTask(request, metadata=md)
    err = rpc_error(
        lambda: tasks.SubmitTask(
            tasks_pb2.SubmitTaskRequest(task=task_input(5, idempotency_key="g-1")), metadata=md
        )
    )

    assert replay.idempotent is True
    assert replay.task == first.task
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency_key" in err.details()


def test_quota_exhausted_is_permission_denied(
    tasks: tasks_pb2_grpc.TaskServiceStub,
    billing: billing_pb2_grpc.BillingServiceStub,
    md: Metadata,
) -> None:
    tasks.SubmitBatch(
        tasks_pb2.SubmitBatchRequest(tasks=[task_input(i, consensus_threshold=10) for i in range(50)]),
        metadata=md,
    )

    err = rpc_error(
        lambda: tasks.SubmitTask(
            tasks_pb2.SubmitTaskRequest(task=task_input(consensus_threshold=2)), metadata=md
        )
    )

    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "quota exhausted"
    # The figures ride in the trailing metadata, as a Refusal.
    [raw] = [v for k, v in err.trailing_metadata() or () if k == "asg-refusal-bin"]
    refusal = tasks_pb2.Refusal.FromString(raw)
    assert (refusal.quota.limit, refusal.quota.used, refusal.quota.requested) == (500, 500, 2)
    assert billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=md).quota_remaining == 0


def test_submit_batch_returns_ids_in_request_order(
    channel: grpc.Channel, tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata
) -> None:
    webhooks_pb2_grpc.WebhookServiceStub(channel).CreateWebhook(
        webhooks_pb2.CreateWebhookRequest(callback_url="https://hooks.example.com/b", secret="whsec_123456"),
        metadata=md,
    )
    reply = tasks.SubmitBatch(
        tasks_pb2.SubmitBatchRequest(
            tasks=[task_input(i) for i in range(3)], callback_url="https://hooks.example.com/b"
        ),
        metadata=md,
    )

    assert reply.batch_id.startswith("bat_")
    assert reply.task_count == 3
    stored = [tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=i), metadata=md) for i in reply.task_ids]
    assert [t.data_url for t in stored] == [f"https://cdn.example.com/{i}.jpg" for i in range(3)]
    assert {(t.batch_id, t.callback_url) for t in stored} == {(reply.batch_id, "https://hooks.example.com/b")}


@pytest.mark.parametrize(
    ("request_tasks", "field"),
    [
        pytest.param([], "tasks", id="empty"),
        pytest.param([task_input(0), task_input(1, data_url="ftp://x")], "tasks[1].data_url",
                     id="bad-task"),
        pytest.param([task_input(i) for i in range(1001)], "tasks", id="1001"),
    ],
)  # fmt: skip
def test_submit_bad_batch_is_invalid_argument_and_stores_nothing(
    tasks: tasks_pb2_grpc.TaskServiceStub,
    md: Metadata,
    request_tasks: list[tasks_pb2.TaskInput],
    field: str,
) -> None:
    err = rpc_error(lambda: tasks.SubmitBatch(tasks_pb2.SubmitBatchRequest(tasks=request_tasks), metadata=md))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field} "), err.details()
    assert len(tasks.ListTasks(tasks_pb2.ListTasksRequest(), metadata=md).tasks) == 0


def test_unknown_and_foreign_tasks_are_not_found(
    tasks: tasks_pb2_grpc.TaskServiceStub,
    billing: billing_pb2_grpc.BillingServiceStub,
    md: Metadata,
) -> None:
    mine = tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=task_input()), metadata=md).task
    other = (("authorization", f"Bearer {new_customer(billing).api_key}"),)

    for task_id, metadata in ((mine.task_id, other), ("tsk_" + "0" * 28, md)):
        get = tasks_pb2.GetTaskRequest(task_id=task_id)
        result = tasks_pb2.GetTaskResultRequest(task_id=task_id)
        for err in (
            rpc_error(lambda: tasks.GetTask(get, metadata=metadata)),  # noqa: B023 - called at once
            rpc_error(lambda: tasks.GetTaskResult(result, metadata=metadata)),  # noqa: B023
        ):
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert err.details() == "task not found"


def test_list_tasks_newest_first_with_cursor_and_filters(
    tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata
) -> None:
    ids = [
        tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=task_input(i)), metadata=md).task.task_id
        for i in range(3)
    ]

    first = tasks.ListTasks(tasks_pb2.ListTasksRequest(limit=2), metadata=md)
    second = tasks.ListTasks(tasks_pb2.ListTasksRequest(limit=2, cursor=first.next_cursor), metadata=md)
    settled = tasks.ListTasks(tasks_pb2.ListTasksRequest(status=common_pb2.TASK_STATUS_SETTLED), metadata=md)
    pending = tasks.ListTasks(tasks_pb2.ListTasksRequest(status=common_pb2.TASK_STATUS_PENDING), metadata=md)

    assert [t.task_id for t in first.tasks] == [ids[2], ids[1]]
    assert first.next_cursor
    assert [t.task_id for t in second.tasks] == [ids[0]]
    assert second.next_cursor == ""
    assert list(settled.tasks) == []
    assert [t.task_id for t in pending.tasks] == ids[::-1]


@pytest.mark.parametrize(
    ("list_request", "field"),
    [
        pytest.param(tasks_pb2.ListTasksRequest(limit=201), "limit", id="limit-201"),
        pytest.param(tasks_pb2.ListTasksRequest(limit=-1), "limit", id="limit-negative"),
        pytest.param(tasks_pb2.ListTasksRequest(cursor="abc"), "cursor", id="cursor"),
    ],
)
def test_list_tasks_bad_request_is_invalid_argument(
    tasks: tasks_pb2_grpc.TaskServiceStub, md: Metadata, list_request: Any, field: str
) -> None:
    err = rpc_error(lambda: tasks.ListTasks(list_request, metadata=md))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field} ")


TASK_CALLS: dict[str, Callable[[tasks_pb2_grpc.TaskServiceStub, Metadata], object]] = {
    "SubmitTask": lambda s, m: s.SubmitTask(tasks_pb2.SubmitTaskRequest(task=task_input()), metadata=m),
    "SubmitBatch": lambda s, m: s.SubmitBatch(tasks_pb2.SubmitBatchRequest(tasks=[task_input()]), metadata=m),
    "GetTask": lambda s, m: s.GetTask(tasks_pb2.GetTaskRequest(task_id="tsk_x"), metadata=m),
    "GetTaskResult": lambda s, m: s.GetTaskResult(
        tasks_pb2.GetTaskResultRequest(task_id="tsk_x"), metadata=m
    ),
    "ListTasks": lambda s, m: s.ListTasks(tasks_pb2.ListTasksRequest(), metadata=m),
    "CancelTask": lambda s, m: s.CancelTask(tasks_pb2.CancelTaskRequest(task_id="tsk_x"), metadata=m),
    "GetBatchStatus": lambda s, m: s.GetBatchStatus(
        tasks_pb2.GetBatchStatusRequest(batch_id="bat_x"), metadata=m
    ),
}


def test_task_calls_cover_every_rpc() -> None:
    service = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]

    # SubmitTasks authenticates each submission on its own (tested below).
    assert set(TASK_CALLS) | {"SubmitTasks"} == {m.name for m in service.methods}


def test_submit_tasks_gives_each_submission_its_own_outcome(
    tasks: tasks_pb2_grpc.TaskServiceStub, billing: billing_pb2_grpc.BillingServiceStub
) -> None:
    key = f"Bearer {new_customer(billing).api_key}"
    other = f"Bearer {new_customer(billing).api_key}"
    submissions = [
        tasks_pb2.SubmitTaskRequest(authorization=key, task=task_input(1, idempotency_key="k")),
        tasks_pb2.SubmitTaskRequest(authorization="Bearer sk_sandbox_nope", task=task_input(2)),
        tasks_pb2.SubmitTaskRequest(authorization="", task=task_input(3)),
        tasks_pb2.SubmitTaskRequest(authorization=key, task=task_input(4, data_url="http://x.io/a")),
        tasks_pb2.SubmitTaskRequest(authorization=other, task=task_input(5, consensus_threshold=10)),
        tasks_pb2.SubmitTaskRequest(authorization=key, task=task_input(1, idempotency_key="k")),
    ]
    outcomes = tasks.SubmitTasks(tasks_pb2.SubmitTasksRequest(submissions=submissions)).outcomes

    assert [o.WhichOneof("outcome") for o in outcomes] == [
        "accepted",
        "refused",
        "refused",
        "refused",
        "accepted",
        "accepted",
    ]
    first, replay = outcomes[0].accepted, outcomes[5].accepted
    assert not first.idempotent and replay.idempotent and replay.task.task_id == first.task.task_id
    unauthenticated = tasks_pb2.Refusal.REASON_UNAUTHENTICATED
    assert [(o.refused.reason, o.refused.message) for o in outcomes[1:3]] == [
        (unauthenticated, "invalid api key"),
        (unauthenticated, "missing api key"),
    ]
    invalid = outcomes[3].refused
    assert invalid.reason == tasks_pb2.Refusal.REASON_INVALID_ARGUMENT
    assert invalid.field == "data_url" and invalid.message.startswith("data_url ")
    # Each submission belongs to its own caller.
    mine = tasks.ListTasks(tasks_pb2.ListTasksRequest(), metadata=(("authorization", key),)).tasks
    assert [t.task_id for t in mine] == [first.task.task_id]


@pytest.mark.parametrize("rpc", sorted(TASK_CALLS))
@pytest.mark.parametrize(
    ("metadata", "details"),
    [
        pytest.param((), "missing api key", id="no-metadata"),
        pytest.param((("authorization", "Bearer sk_sandbox_nope"),), "invalid api key", id="bad"),
    ],
)
def test_every_task_rpc_needs_a_valid_key(
    tasks: tasks_pb2_grpc.TaskServiceStub, rpc: str, metadata: Metadata, details: str
) -> None:
    err = rpc_error(lambda: TASK_CALLS[rpc](tasks, metadata))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == details


# standard services ----------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "asg.v1.TaskService", "asg.v1.BillingService"])
def test_health_is_serving(channel: grpc.Channel, service: str) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    )

    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    err = rpc_error(
        lambda: health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="asg.v1.NoSuchService"), timeout=10
        )
    )

    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    [reply] = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
    )

    names = {s.name for s in reply.list_services_response.service}
    assert {"asg.v1.TaskService", "asg.v1.BillingService", "grpc.health.v1.Health"} <= names


def test_reflection_describes_the_task_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [reply] = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="asg.v1.TaskService")]),
            timeout=10,
        )
    )

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    services = {f"{f.package}.{s.name}": [m.name for m in s.method] for f in files for s in f.service}
    expected = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]
    assert services["asg.v1.TaskService"] == [m.name for m in expected.methods]
