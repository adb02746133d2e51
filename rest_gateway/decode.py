"""JSON bodies → protobuf requests. Only shapes are checked here (types, unknown fields);
the rules of the field table are the core's, so gRPC callers get them too."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from asg_grpc.v1 import billing_pb2, common_pb2, jobs_pb2, tasks_pb2, webhooks_pb2
from rest_gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

KIB = 1024
SMALL_BODY = 64 * KIB
BATCH_BODY = 8 * 1024 * KIB
_INT64 = 2**63

TASK_FIELDS = frozenset(
    (
        "type",
        "data_url",
        "label_spec",
        "consensus_threshold",
        "callback_url",
        "idempotency_key",
        "expires_in_seconds",
    )
)
LABEL_SPEC_FIELDS = frozenset(("question", "options"))
BATCH_FIELDS = frozenset(("tasks", "callback_url"))
CUSTOMER_FIELDS = frozenset(("name", "email"))
ROTATE_KEY_FIELDS = frozenset(("grace_seconds",))
WEBHOOK_FIELDS = frozenset(("callback_url", "secret", "events"))
JOB_FIELDS = frozenset(
    ("manifest_url", "label_spec", "type", "consensus_threshold", "callback_url", "s3_credentials")
)
S3_CREDENTIAL_FIELDS = frozenset(("access_key_id", "secret_access_key", "region", "endpoint_url"))


def _json_media_type(content_type: str | None) -> bool:
    """Absent (curl without -H), `application/json` or any `+json` type, parameters aside."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(key, "appears more than once in its JSON object")
            seen.add(key)
    return obj


async def json_object(request: Request, limit: int, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object, refusing more than `limit` bytes before reading them; an
    empty body is `{}` where the body is optional.

    orjson decides what is valid JSON; a second pass refuses duplicate keys, which orjson (like
    most parsers) silently resolves to the last value: the caller may have meant the first."""
    if not _json_media_type(request.headers.get("content-type")):
        raise UnsupportedMediaType("request body must be sent as Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    if size == 0 and not required:
        return {}
    raw = b"".join(chunks)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("request body", "must be valid JSON") from None
    json.loads(raw, object_pairs_hook=_unique_keys)
    if not isinstance(body, dict):
        raise BadRequest("request body", "must be a JSON object")
    return body


def _object(value: object, name: str, allowed: frozenset[str], prefix: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise BadRequest(name, "must be a JSON object")
    if not value.keys() <= allowed:
        unknown = next(key for key in value if key not in allowed)
        raise BadRequest(prefix + unknown, "is not a known field")
    return value


def _string(obj: dict[str, Any], key: str, prefix: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise BadRequest(prefix + key, "must be a string")


def _integer(obj: dict[str, Any], key: str, prefix: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int:  # bool is a subclass of int: refused too
        raise BadRequest(prefix + key, "must be an integer")
    if not -_INT64 <= value < _INT64:
        raise BadRequest(prefix + key, "is out of range")
    return value


def _label_spec(value: object, prefix: str) -> common_pb2.LabelSpec:
    where = prefix + "label_spec."
    spec = _object(value, prefix + "label_spec", LABEL_SPEC_FIELDS, where)
    options = spec.get("options")
    if options is None:
        options = []
    elif type(options) is not list:
        raise BadRequest(where + "options", "must be an array of strings")
    for i, option in enumerate(options):
        if type(option) is not str:
            raise BadRequest(f"{where}options[{i}]", "must be a string")
    return common_pb2.LabelSpec(question=_string(spec, "question", where), options=options)


def task_input(value: object, prefix: str = "") -> tasks_pb2.TaskInput:
    """One task object; `prefix` locates it in a batch (`tasks[3].`)."""
    obj = _object(value, prefix.rstrip(".") or "request body", TASK_FIELDS, prefix)
    spec = obj.get("label_spec")
    return tasks_pb2.TaskInput(
        type=_string(obj, "type", prefix),
        data_url=_string(obj, "data_url", prefix),
        label_spec=None if spec is None else _label_spec(spec, prefix),
        consensus_threshold=_integer(obj, "consensus_threshold", prefix),
        callback_url=_string(obj, "callback_url", prefix),
        idempotency_key=_string(obj, "idempotency_key", prefix),
        expires_in_seconds=_integer(obj, "expires_in_seconds", prefix),
    )


def submit_batch(body: dict[str, Any]) -> tasks_pb2.SubmitBatchRequest:
    _object(body, "request body", BATCH_FIELDS, "")
    tasks = body.get("tasks")
    if tasks is None:
        raise BadRequest("tasks", "is required")
    if not isinstance(tasks, list):
        raise BadRequest("tasks", "must be an array of task objects")
    return tasks_pb2.SubmitBatchRequest(
        tasks=[task_input(t, f"tasks[{i}].") for i, t in enumerate(tasks)],
        callback_url=_string(body, "callback_url", ""),
    )


def register_customer(body: dict[str, Any]) -> billing_pb2.RegisterCustomerRequest:
    _object(body, "request body", CUSTOMER_FIELDS, "")
    return billing_pb2.RegisterCustomerRequest(
        name=_string(body, "name", "") or "", email=_string(body, "email", "") or ""
    )


def rotate_key(body: dict[str, Any]) -> billing_pb2.RotateKeyRequest:
    _object(body, "request body", ROTATE_KEY_FIELDS, "")
    return billing_pb2.RotateKeyRequest(grace_seconds=_integer(body, "grace_seconds", ""))


def create_webhook(body: dict[str, Any]) -> webhooks_pb2.CreateWebhookRequest:
    _object(body, "request body", WEBHOOK_FIELDS, "")
    events = body.get("events")
    if events is None:
        events = []
    elif type(events) is not list:
        raise BadRequest("events", "must be an array of event types")
    for i, event in enumerate(events):
        if type(event) is not str:
            raise BadRequest(f"events[{i}]", "must be a string")
    return webhooks_pb2.CreateWebhookRequest(
        callback_url=_string(body, "callback_url", "") or "",
        secret=_string(body, "secret", "") or "",
        events=events,
    )


def create_job(body: dict[str, Any]) -> jobs_pb2.CreateJobRequest:
    _object(body, "request body", JOB_FIELDS, "")
    spec = body.get("label_spec")
    raw = body.get("s3_credentials")
    credentials = None
    if raw is not None:
        where = "s3_credentials."
        obj = _object(raw, "s3_credentials", S3_CREDENTIAL_FIELDS, where)
        credentials = jobs_pb2.S3Credentials(
            access_key_id=_string(obj, "access_key_id", where) or "",
            secret_access_key=_string(obj, "secret_access_key", where) or "",
            region=_string(obj, "region", where) or "",
            endpoint_url=_string(obj, "endpoint_url", where),
        )
    return jobs_pb2.CreateJobRequest(
        manifest_url=_string(body, "manifest_url", ""),
        label_spec=None if spec is None else _label_spec(spec, ""),
        type=_string(body, "type", ""),
        consensus_threshold=_integer(body, "consensus_threshold", ""),
        callback_url=_string(body, "callback_url", ""),
        s3_credentials=credentials,
    )
