"""Request parsing (rest_gateway/decode.py and the models it reads) as a property: any JSON body
becomes either the model, and from it the protobuf message it says, field for field, or a
BadRequest whose message names the field at fault — never another exception (which the gateway
would answer with a 500)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from rest_gateway import decode, models
from rest_gateway.errors import BadRequest

PROBLEMS = (
    "must be a JSON object",
    "is not a known field",
    "must be a string",
    "must be an integer",
    "must be a number",
    "is out of range",
    "must be an array of strings",
    "must be an array of task objects",
    "must be an array of event types",
    "is required",
)

# What orjson can hand the gateway: no NaN or infinity, no lone surrogates, integers in 64 bits.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=12)
)
keys = st.text(st.characters(codec="utf-8"), max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


TASK_FIELDS = fields(models.TaskInput)
LABEL_SPEC_FIELDS = fields(models.LabelSpec)
BATCH_FIELDS = fields(models.BatchInput)
CUSTOMER_FIELDS = fields(models.CustomerInput)
KEY_ROTATION_FIELDS = fields(models.KeyRotation)
WEBHOOK_FIELDS = fields(models.WebhookInput)
JOB_FIELDS = fields(models.JobInput)
S3_CREDENTIAL_FIELDS = fields(models.S3Credentials)


def near(fields: frozenset[str], values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[dict]:
    """Objects made mostly of the known fields, so the checks past the first are reached."""
    return st.dictionaries(st.sampled_from(sorted(fields)) | keys, values, max_size=len(fields) + 1)


spec_like = near(LABEL_SPEC_FIELDS) | json_values
task_values = json_values | spec_like | st.lists(scalars, max_size=3)
task_like = near(TASK_FIELDS, task_values)
bodies = st.one_of(
    json_values,
    task_like,
    near(BATCH_FIELDS, st.lists(task_like | json_values, max_size=3) | json_values),
    near(CUSTOMER_FIELDS),
    near(KEY_ROTATION_FIELDS),
    near(WEBHOOK_FIELDS, st.lists(scalars, max_size=3) | json_values),
    near(JOB_FIELDS, task_values | near(S3_CREDENTIAL_FIELDS)),
).map(lambda value: orjson.loads(orjson.dumps(value)))

DECODERS: list[tuple[type[BaseModel], bool]] = [
    (models.TaskInput, False),  # takes any value
    (models.BatchInput, True),  # these take the body once json_object found it an object
    (models.CustomerInput, True),
    (models.KeyRotation, True),
    (models.WebhookInput, True),
    (models.JobInput, True),
]


def keys_in(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


def check_names_a_field(error: BadRequest, body: object) -> None:
    problem = next((p for p in PROBLEMS if error.message.endswith(" " + p)), None)
    assert problem is not None, error.message
    field = error.message.removesuffix(" " + problem)
    if problem == "is not a known field":
        # The key as sent, after its path; it may be "" (then the message starts with a space).
        assert any(field.endswith(key) for key in keys_in(body)), error.message
    else:
        known = (
            TASK_FIELDS
            | LABEL_SPEC_FIELDS
            | BATCH_FIELDS
            | CUSTOMER_FIELDS
            | KEY_ROTATION_FIELDS
            | WEBHOOK_FIELDS
            | JOB_FIELDS
            | S3_CREDENTIAL_FIELDS
            | {"request body"}
        )
        last = field.rsplit(".", 1)[-1].split("[", 1)[0]
        assert last in known, error.message


@given(bodies)
def test_any_json_body_decodes_or_names_the_field_at_fault(body: object) -> None:
    for model, needs_object in DECODERS:
        if needs_object and not isinstance(body, dict):
            continue
        try:
            message = decode.parse(model, body).to_proto()  # type: ignore[attr-defined]
        except BadRequest as error:
            check_names_a_field(error, body)
        else:
            assert isinstance(message, Message)


@given(task_like.map(lambda value: orjson.loads(orjson.dumps(value))))
def test_a_task_that_decodes_keeps_every_field_as_sent(body: dict[str, Any]) -> None:
    try:
        task = decode.parse(models.TaskInput, body).to_proto()
    except BadRequest:
        return
    for name in ("type", "data_url", "callback_url", "idempotency_key"):
        assert (getattr(task, name) if task.HasField(name) else None) == body.get(name)
    for name in ("consensus_threshold", "expires_in_seconds"):
        assert (getattr(task, name) if task.HasField(name) else None) == body.get(name)
    spec = body.get("label_spec")
    assert task.HasField("label_spec") == (spec is not None)
    if spec is not None:
        assert list(task.label_spec.options) == (spec.get("options") or [])
        assert task.label_spec.question == (spec.get("question") or "")  # no presence in the proto


# JSON text written by hand, so that an object may repeat a key: objects as lists of pairs, keys
# from a small alphabet with colons (collisions likely, and colons inside strings), escaped or not.
Pairs = list[tuple[str, Any]]
small_keys = st.text(st.sampled_from("a:é\\"), max_size=3)
raw_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.lists(st.tuples(small_keys, inner), max_size=4),
    max_leaves=12,
)


def _text(value: Any, ascii_only: bool, space: str) -> str:
    """`value` as JSON text, `space` around each comma and colon, strings `\\u`-escaped (colons
    too) or not."""
    comma = f"{space},{space}"
    if isinstance(value, tuple):
        return "[" + comma.join(_text(v, ascii_only, space) for v in value) + "]"
    if isinstance(value, list):
        pairs = (
            f"{_text(k, ascii_only, space)}{space}:{space}{_text(v, ascii_only, space)}" for k, v in value
        )
        return "{" + comma.join(pairs) + "}"
    return json.dumps(value).replace(":", "\\u003a") if ascii_only else orjson.dumps(value).decode()


def _repeats(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(_repeats(v) for v in value)
    if isinstance(value, list):
        names = [k for k, _ in value]
        return len(set(names)) != len(names) or any(_repeats(v) for _, v in value)
    return False


@given(raw_values, st.booleans(), st.sampled_from(["", " ", "\n  "]))
def test_a_repeated_key_is_always_refused_and_only_then(value: Any, ascii_only: bool, sep: str) -> None:
    """The cheap test (no_duplicate_keys) never says "no repeat" of a body that has one, and the
    whole check refuses exactly the bodies with a key twice in one object."""
    raw = _text(value, ascii_only, sep).encode()
    body = orjson.loads(raw)
    if _repeats(value):
        assert not decode.no_duplicate_keys(raw, body)
        try:
            decode.refuse_duplicate_keys(raw, body)
        except BadRequest as exc:
            assert str(exc).endswith("appears more than once in its JSON object")
        else:
            raise AssertionError(f"{raw!r} has a repeated key")
    else:
        decode.refuse_duplicate_keys(raw, body)
