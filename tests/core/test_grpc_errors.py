"""What a gRPC client sees when its request is malformed or oversized (issue 15, defect 8): a
proper status with a short message that names no internals and echoes no more than a prefix of
its input, whatever the RPC. Real gRPC over loopback against the stack's core.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from asg_grpc.devstack import Stack
from asg_grpc.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    chain_pb2,
    common_pb2,
    jobs_pb2,
    labeling_pb2,
    tasks_pb2,
    webhooks_pb2,
)

BIG = "x" * 100_000
MAX_DETAILS = 300  # docs/api.md, "Limits"
# Every RPC of asg.v1 that takes one request message (Work is a stream of them).
METHODS: list[MethodDescriptor] = [
    method
    for module in (tasks_pb2, billing_pb2, webhooks_pb2, jobs_pb2, chain_pb2, labeling_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
    if not method.client_streaming
]
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_addr) as ch:
        yield ch


@pytest.fixture(scope="module")
def md(channel: grpc.Channel) -> Metadata:
    reply = billing_pb2_grpc.BillingServiceStub(channel).RegisterCustomer(
        billing_pb2.RegisterCustomerRequest(name="Errors", email=f"{uuid.uuid4().hex[:12]}@example.com"),
        timeout=10,
    )
    return (("authorization", f"Bearer {reply.api_key}"),)


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def call_raw(channel: grpc.Channel, method: MethodDescriptor, body: bytes, md: Metadata) -> grpc.RpcError:
    """Send raw bytes as the request; the error the call ends with."""
    if method.server_streaming:
        stream = channel.unary_stream(path(method))
        with pytest.raises(grpc.RpcError) as info:
            list(stream(body, metadata=md, timeout=10))
    else:
        unary = channel.unary_unary(path(method))
        with pytest.raises(grpc.RpcError) as info:
            unary(body, metadata=md, timeout=10)
    return info.value


def assert_short_and_plain(error: grpc.RpcError) -> None:
    details = error.details() or ""  # type: ignore[attr-defined]
    assert len(details) <= MAX_DETAILS
    for internal in ("Error", "Exception", "Traceback", "<class", "Unexpected"):
        assert internal not in details


@pytest.mark.parametrize("method", METHODS, ids=path)
def test_garbage_bytes_are_invalid_argument_without_internals(
    channel: grpc.Channel, md: Metadata, method: MethodDescriptor
) -> None:
    error = call_raw(channel, method, b"\xff\xff\xff", md)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == f"request is not a valid {method.input_type.full_name} message"  # type: ignore[attr-defined]
    assert_short_and_plain(error)


def test_a_message_of_the_wrong_type_is_invalid_argument(channel: grpc.Channel, md: Metadata) -> None:
    wrong = tasks_pb2.GetTaskResultRequest(task_id="tsk_x").SerializeToString()
    method = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].methods_by_name["SubmitTask"]

    error = call_raw(channel, method, wrong, md)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert_short_and_plain(error)


def string_fields(*, ids_only: bool) -> list[tuple[MethodDescriptor, str]]:
    """(RPC, top-level single string field) pairs; with ids_only, the ids and cursors."""
    return [
        (method, field.name)
        for method in METHODS
        for field in method.input_type.fields
        if field.type == FieldDescriptor.TYPE_STRING
        and not field.is_repeated
        and (not ids_only or field.name.endswith("_id") or field.name == "cursor")
    ]


def field_ids(value: object) -> str | None:
    return path(value) if isinstance(value, MethodDescriptor) else None


def call_with_big(channel: grpc.Channel, md: Metadata, method: MethodDescriptor, field: str) -> grpc.RpcError:
    request: Message = GetMessageClass(method.input_type)(**{field: BIG})
    return call_raw(channel, method, request.SerializeToString(), md)


@pytest.mark.parametrize(("method", "field"), string_fields(ids_only=True), ids=field_ids)
def test_a_100_kb_id_is_invalid_argument_with_a_short_message(
    channel: grpc.Channel, md: Metadata, method: MethodDescriptor, field: str
) -> None:
    error = call_with_big(channel, md, method, field)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == f"{field} must be at most 64 characters"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "field"), string_fields(ids_only=False), ids=field_ids)
def test_no_error_echoes_a_100_kb_string(
    channel: grpc.Channel, md: Metadata, method: MethodDescriptor, field: str
) -> None:
    error = call_with_big(channel, md, method, field)

    assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)  # type: ignore[attr-defined]
    assert_short_and_plain(error)


def test_a_100_kb_idempotency_key_is_refused_by_its_documented_limit(
    channel: grpc.Channel, md: Metadata
) -> None:
    task = tasks_pb2.TaskInput(
        type="sentiment",
        data_url="https://cdn.example.com/a.txt",
        label_spec=common_pb2.LabelSpec(question="Tone?", options=["good", "bad"]),
        idempotency_key=BIG,
    )
    method = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].methods_by_name["SubmitTask"]

    error = call_raw(channel, method, tasks_pb2.SubmitTaskRequest(task=task).SerializeToString(), md)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == "idempotency_key must be 1 to 255 characters"  # type: ignore[attr-defined]


def test_an_oversized_metadata_value_is_invalid_argument(channel: grpc.Channel, md: Metadata) -> None:
    method = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].methods_by_name["GetCustomer"]

    error = call_raw(channel, method, b"", (*md, ("x-request-id", "r" * 4000)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert error.details() == "metadata x-request-id must be at most 1024 characters"  # type: ignore[attr-defined]
