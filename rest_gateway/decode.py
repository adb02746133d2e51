"""Request bodies → the typed models the OpenAPI shows (models.py): one reader per body.

Here: the media type (415), the size before reading (413), valid JSON, duplicate keys and the
model's shape checks, each refusal a 400 naming the field as the client sent it (`tasks[3].
label_spec.options[1]`), never FastAPI's 422. The rules of the field table are the core's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import orjson
import pydantic
from pydantic_core import ErrorDetails
from starlette.requests import Request

from rest_gateway import models
from rest_gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

KIB = 1024
SMALL_BODY = 64 * KIB
BATCH_BODY = 8 * 1024 * KIB

Model = TypeVar("Model", bound=pydantic.BaseModel)


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


# json.loads(raw, object_pairs_hook=_unique_keys) without building a decoder per request.
_DUPLICATES = json.JSONDecoder(object_pairs_hook=_unique_keys)


def no_duplicate_keys(raw: bytes, body: object) -> bool:
    """True when `raw` (which orjson parsed to `body`) cannot hold a repeated key; False means
    "maybe": run the slow pass. Without a backslash in `raw`, every string reads as it is written,
    so its colons are the keys' (one each) plus those inside strings; `body` written back by
    orjson has one colon per key it kept plus the same string colons, minus those of whatever a
    repeated key dropped. Equal counts: nothing was dropped. Both counts run in C."""
    if b"\\" in raw:
        return False
    try:
        return raw.count(b":") == orjson.dumps(body).count(b":")
    except orjson.JSONEncodeError:
        return False


def refuse_duplicate_keys(raw: bytes, body: object) -> None:
    """The 400 naming a key that appears twice in one object of `raw`, which orjson (like most
    parsers) silently resolves to the last value: the caller may have meant the first. The slow
    pass (the stdlib decoder, pairs seen one by one) runs only when the cheap test cannot rule a
    repeat out (docs/benchmarks.md, issue 17: it was ~10 µs of every submission)."""
    if not no_duplicate_keys(raw, body):
        _DUPLICATES.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


async def json_object(request: Request, limit: int, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object, refusing more than `limit` bytes before reading them; an
    empty body is `{}` where the body is optional. orjson decides what is valid JSON; a key
    repeated in one object is refused (refuse_duplicate_keys)."""
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
    refuse_duplicate_keys(raw, body)
    if not isinstance(body, dict):
        raise BadRequest("request body", "must be a JSON object")
    return body


# An array's refusal says what it holds, by the field's name.
_ARRAY_OF = {
    "options": "must be an array of strings",
    "tasks": "must be an array of task objects",
    "events": "must be an array of event types",
}
_PROBLEM = {
    "extra_forbidden": "is not a known field",
    "missing": "is required",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "greater_than_equal": "is out of range",
    "less_than_equal": "is out of range",
}
# Which refusal is reported when a body has several: an unknown field first (a typo explains the
# rest), a field of the wrong type next, a missing one last.
_RANK = {"extra_forbidden": 0, "missing": 2}


def _field(loc: Sequence[int | str]) -> str:
    """`("tasks", 3, "label_spec", "options", 1)` → `tasks[3].label_spec.options[1]`."""
    if not loc:
        return "request body"
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _refusal(error: ErrorDetails) -> BadRequest:
    kind, loc = error["type"], error["loc"]
    if error["input"] is None and kind != "extra_forbidden":
        return BadRequest(_field(loc), "is required")  # null is absent, as in the field table
    if kind == "list_type":
        last = next((p for p in reversed(loc) if isinstance(p, str)), "")
        return BadRequest(_field(loc), _ARRAY_OF.get(last, "must be an array"))
    return BadRequest(_field(loc), _PROBLEM.get(kind, "is not valid"))


def parse(model: type[Model], body: object) -> Model:
    """`body` (decoded JSON) as `model`, or the BadRequest naming the field at fault."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise _refusal(min(errors, key=lambda e: _RANK.get(e["type"], 1))) from None


class Reader(Generic[Model]):
    """One route's body: its model, its size limit, whether it may be empty."""

    def __init__(self, model: type[Model], limit: int, *, required: bool = True) -> None:
        self.model = model
        self.limit = limit
        self.required = required

    async def read(self, request: Request) -> Model:
        return parse(self.model, await json_object(request, self.limit, required=self.required))


TASK = Reader(models.TaskInput, SMALL_BODY)
BATCH = Reader(models.BatchInput, BATCH_BODY)
CUSTOMER = Reader(models.CustomerInput, SMALL_BODY)
CUSTOMER_UPDATE = Reader(models.CustomerUpdate, SMALL_BODY)
KEY_ROTATION = Reader(models.KeyRotation, SMALL_BODY, required=False)
WEBHOOK = Reader(models.WebhookInput, SMALL_BODY)
JOB = Reader(models.JobInput, SMALL_BODY)
