"""docs/api.md's Limits table, row by row: a request just over each limit gets the stated error.

The table is parsed, not copied: a row added without a probe here, or a probe whose row went
away, fails the test, so the table and the gateway cannot drift apart. Rows whose error is a gRPC
code are probed over gRPC against the core (GRPC_PROBES), the others over HTTP (PROBES)."""

from __future__ import annotations

import asyncio
import functools
import re
import socket
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from asg_grpc.devstack import Stack
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.conftest import make_stack, register, register_webhook
from tests.gateway.bodies import TASK

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADER = "| what | limit | error |"

HOOK = "https://hooks.example.com/"


def limits_table() -> dict[str, tuple[int | str, str]]:
    """`what` → (HTTP status or gRPC code, error message) of each row."""
    lines = API_MD.read_text().splitlines()
    start = lines.index(HEADER) + 2  # past the header and the |---| line
    rows: dict[str, tuple[int | str, str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        what, _limit, error = (cell.strip() for cell in line.strip("|").split(" | "))
        match = re.fullmatch(r"(\d{3}|[A-Z_]+) `([^`]+)`.*", error)
        assert match, f"the error of {what!r} must read: STATUS `message` or GRPC_CODE `message`"
        rows[what] = (int(match[1]) if match[1].isdigit() else match[1], match[2])
    return rows


def task(**changes: object) -> dict[str, object]:
    return {**TASK, **changes}


def spec(options: list[str], question: str = "Which?") -> dict[str, object]:
    return task(label_spec={"question": question, "options": options})


Probe = Callable[[httpx.Client], httpx.Response]


def post(path: str, body: object) -> Probe:
    return lambda client: client.post(path, json=body)


def get(path: str) -> Probe:
    return lambda client: client.get(path)


def twenty_first_webhook(client: httpx.Client) -> httpx.Response:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    for i in range(20):
        register_webhook(str(client.base_url), key, f"{HOOK}{i}")
    return client.post("/v1/webhooks", json={"callback_url": f"{HOOK}20", "secret": "whsec_test_secret"})


def over_the_rate_limit(client: httpx.Client) -> httpx.Response:
    for _ in range(100):
        reply = client.get("/v1/customers/me")
        if reply.status_code != 200:
            return reply
    return reply


def sixth_active_key(client: httpx.Client) -> httpx.Response:
    """Four rotations leave five keys active (the rotated-away ones in their grace): the fifth
    rotation is one too many."""
    for _ in range(4):
        reply = client.post("/v1/customers/me/keys", json={})
        assert reply.status_code == 201, reply.text
        client.headers["Authorization"] = f"Bearer {reply.json()['api_key']}"
    return client.post("/v1/customers/me/keys", json={})


@pytest.fixture(scope="module")
def stalled_manifest() -> Iterator[str]:
    """An https URL whose server accepts the connection and never answers: a job reading its
    manifest from there stays in flight for the whole module."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/manifest.jsonl"


def eleventh_job(client: httpx.Client, url: str = "") -> httpx.Response:
    """`url`: the stalled manifest's (the test passes it)."""
    body = {"manifest_url": url, "label_spec": {"question": "Q?", "options": ["a", "b"]}}
    for _ in range(10):
        reply = client.post("/v1/jobs", json=body)
        assert reply.status_code == 202, reply.text
    refused = client.post("/v1/jobs", json=body)
    assert refused.headers["Retry-After"] == "30"
    return refused


PROBES: dict[str, Probe] = {
    "body of `POST /v1/tasks`, `POST /v1/customers`, `POST /v1/webhooks`, `POST /v1/jobs`": post(
        "/v1/tasks", task(data_url="https://example.com/" + "a" * 65536)
    ),
    "body of `POST /v1/tasks/batch`": post("/v1/tasks/batch", {"tasks": [TASK] * 70_000}),
    "tasks per batch": post("/v1/tasks/batch", {"tasks": [TASK] * 1001}),
    "`data_url`": post("/v1/tasks", task(data_url="https://example.com/" + "a" * 2029)),
    "`label_spec.question`": post("/v1/tasks", spec(["a", "b"], question="q" * 1001)),
    "`label_spec.options` count": post("/v1/tasks", spec([f"o{i}" for i in range(51)])),
    "`label_spec.options` each": post("/v1/tasks", spec(["a", "b" * 201])),
    "`label_spec.options` distinct": post("/v1/tasks", spec(["café", "cafe\u0301"])),
    "`idempotency_key`": post("/v1/tasks", task(idempotency_key="k" * 256)),
    "`expires_in_seconds`": post("/v1/tasks", task(expires_in_seconds=2592001)),
    "`consensus_method`": post("/v1/tasks", task(consensus_method="unanimous")),
    "`target_confidence`": post("/v1/tasks", task(target_confidence=0.9995)),
    "`max_labels`": post("/v1/tasks", task(max_labels=2)),
    "`gold_label`": post("/v1/tasks", task(gold_label="neither")),
    "`labor` (task or batch)": post("/v1/tasks", task(labor="humans")),
    "`labor` of `POST /v1/jobs`": post(
        "/v1/jobs",
        {"manifest_url": "https://example.com/m.jsonl", "label_spec": TASK["label_spec"], "labor": "humans"},
    ),
    "`name` (customer)": post("/v1/customers", {"name": "n" * 201, "email": "n@example.com"}),
    "`email`": post("/v1/customers", {"name": "n", "email": "e" * 250 + "@example.com"}),
    "webhook `secret`": post("/v1/webhooks", {"callback_url": HOOK, "secret": "s" * 257}),
    "webhooks per customer": twenty_first_webhook,
    "`limit` of `GET /v1/tasks`, `GET /v1/jobs`, `GET /v1/webhooks/{id}/deliveries`": get(
        "/v1/tasks?limit=201"
    ),
    "`count` of `GET /v1/chain/headers`": get("/v1/chain/headers?count=2001"),
    "`from` of `GET /v1/chain/headers`": get("/v1/chain/headers?from=-1"),
    "`month` of `GET /v1/billing/usage`": get("/v1/billing/usage?month=9999-01"),
    "calls per API key": over_the_rate_limit,
    "API keys active at once (`POST /v1/customers/me/keys`)": sixth_active_key,
    "`grace_seconds` (key rotation)": post("/v1/customers/me/keys", {"grace_seconds": 604801}),
    "jobs in flight per customer": eleventh_job,
}


# gRPC probes: (the core's address, a worker token, a customer key) → (code name, details).
GrpcProbe = Callable[[str, str, str], Coroutine[Any, Any, tuple[str, str]]]


async def _status(call: Any) -> tuple[str, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details() or ""
    raise AssertionError("the call succeeded")


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _hello(stub: labeling_pb2_grpc.LabelingServiceStub, token: str) -> grpc.aio.StreamStreamCall:
    """A Work stream, welcomed (or failed: the caller reads its status)."""
    call = stub.Work(metadata=_bearer(token))
    await call.write(labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1)))
    await call.read()
    return call


async def seventeenth_stream(addr: str, worker: str, key: str) -> tuple[str, str]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        open_ = [await _hello(stub, worker) for _ in range(16)]
        try:
            refused = stub.Work(metadata=_bearer(worker))
            return await _status(refused.read())
        finally:
            for call in open_:
                call.cancel()


async def over_the_label_rate(addr: str, worker: str, key: str) -> tuple[str, str]:
    """A full bucket lets one message of 4001 labels through (for tasks the worker does not
    hold: refused one by one, but counted); the next such message finds it in debt."""
    async with grpc.aio.insecure_channel(addr) as channel:
        call = await _hello(labeling_pb2_grpc.LabelingServiceStub(channel), worker)
        labels = [labeling_pb2.Label(task_id=f"tsk_{i}", option="a") for i in range(4001)]
        for _ in range(2):
            await call.write(labeling_pb2.WorkerMessage(labels=labeling_pb2.Labels(items=labels)))
        code, details = await _status(_read_to_the_end(call))
        metadata = dict(await call.trailing_metadata() or ())
        assert details.endswith(f"retry after {metadata['retry-after']} s"), (details, metadata)
        return code, details


async def _read_to_the_end(call: grpc.aio.StreamStreamCall) -> None:
    """Raises the stream's AioRpcError, once the core ends it failing."""
    while await call.read() is not grpc.aio.EOF:
        pass


async def long_id(addr: str, worker: str, key: str, length: int = 65) -> tuple[str, str]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        return await _status(
            stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t" * length), metadata=_bearer(key))
        )


async def huge_id(addr: str, worker: str, key: str) -> tuple[str, str]:
    code, details = await long_id(addr, worker, key, 100_000)
    assert len(details) <= 300
    return code, details


async def long_submission_authorization(addr: str, worker: str, key: str) -> tuple[str, str]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        request = tasks_pb2.SubmitTasksRequest(
            submissions=[tasks_pb2.SubmitTaskRequest(authorization="Bearer " + "k" * 1024)]
        )
        return await _status(stub.SubmitTasks(request, metadata=_bearer(key)))


async def long_metadata(addr: str, worker: str, key: str) -> tuple[str, str]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        request = tasks_pb2.GetTaskRequest(task_id="tsk_nope")
        return await _status(stub.GetTask(request, metadata=_bearer("k" * 1025)))


GRPC_PROBES: dict[str, GrpcProbe] = {
    "Work streams per worker (gRPC)": seventeenth_stream,
    "labels per second per worker (gRPC)": over_the_label_rate,
    "ids in gRPC requests (every `*_id` field, `cursor`)": long_id,
    "`authorization` field of a `SubmitTasks` submission": long_submission_authorization,
    "gRPC metadata values": long_metadata,
    "gRPC status details (every error message of the core)": huge_id,
}


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The rate limit on, as in production: the other rows are checked far below it."""
    with make_stack(tmp_path_factory.mktemp("limits"), ASG_RATE_LIMIT="on") as stack:
        yield stack


def test_every_row_has_a_probe() -> None:
    assert set(limits_table()) == set(PROBES) | set(GRPC_PROBES)
    assert not set(PROBES) & set(GRPC_PROBES)


# Probes that need the module's own stack: the rate limit on, or state no other test may see
# (jobs left in flight, a worker's streams and label bucket used up).
OWN_STACK = {"calls per API key", "jobs in flight per customer", *GRPC_PROBES}


def stated_pattern(message: str) -> str:
    """The table's message as a pattern: N is a number, CUSTOMER_ID the caller's id."""
    pattern = re.escape(message).replace("CUSTOMER_ID", "\0")
    return pattern.replace("N", r"\d+").replace("\0", r"cust_[0-9a-f]+")


@pytest.mark.parametrize(("what", "stated"), sorted(limits_table().items()))
def test_each_limit_gets_its_stated_error(
    limited_stack: Stack, stack: Stack, stalled_manifest: str, what: str, stated: tuple[int | str, str]
) -> None:
    target = limited_stack if what in OWN_STACK else stack
    key = register(target.base_url)["api_key"]
    status, message = stated
    if what in GRPC_PROBES:
        worker = target.dev_workers(len(GRPC_PROBES) + 1)[sorted(GRPC_PROBES).index(what)]
        code, details = asyncio.run(GRPC_PROBES[what](target.grpc_addr, worker, key))
        assert code == status, details
        assert re.fullmatch(stated_pattern(message), details), details
        return
    probe = PROBES[what]
    if probe is eleventh_job:
        probe = functools.partial(eleventh_job, url=stalled_manifest)
    with httpx.Client(
        base_url=target.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        reply = probe(client)
    assert reply.status_code == status, reply.text
    assert re.fullmatch(stated_pattern(message), reply.json()["error"]), reply.text
