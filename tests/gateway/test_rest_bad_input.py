"""POST /v1/tasks refuses every broken rule of the field table (seed 004, docs/api.md) with the
documented status and an error naming the field, and nothing is stored afterwards.

One table, one test: each row is a request body (or raw bytes) and how it is authorised.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from asg_grpc.domain.customers import hash_token
from asg_grpc.store.sqlite import SQLiteStore

SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
VALID = {"type": "image_classification", "data_url": "https://ex.com/a.jpg", "label_spec": SPEC}
MISSING = object()


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    """One client for the module (overrides conftest's): a new client per row costs an SSL
    context, ~20 ms."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


def body(**changes: Any) -> dict[str, Any]:
    """VALID with fields replaced; MISSING removes one."""
    out = {**VALID, **changes}
    return {k: v for k, v in out.items() if v is not MISSING}


def spec(**changes: Any) -> dict[str, Any]:
    """VALID with label_spec fields replaced; MISSING removes one."""
    out = {**SPEC, **changes}
    return body(label_spec={k: v for k, v in out.items() if v is not MISSING})


# (id, request body: a dict sent as JSON or raw bytes, auth, status, field the error names)
# auth: "key" (the customer's own), "none", "unknown", "basic", "revoked".
ROWS: list[tuple[str, dict[str, Any] | bytes, str, int, str | None]] = [
    ("type-missing", body(type=MISSING), "key", 400, "type"),
    ("type-unknown", body(type="video_classification"), "key", 400, "type"),
    ("type-wrong-case", body(type="Sentiment"), "key", 400, "type"),
    ("type-not-string", body(type=["sentiment"]), "key", 400, "type"),
    ("type-null", body(type=None), "key", 400, "type"),
    ("data_url-missing", body(data_url=MISSING), "key", 400, "data_url"),
    ("data_url-http", body(data_url="http://ex.com/a.jpg"), "key", 400, "data_url"),
    ("data_url-ftp", body(data_url="ftp://ex.com/a.jpg"), "key", 400, "data_url"),
    ("data_url-no-host", body(data_url="https:///a.jpg"), "key", 400, "data_url"),
    ("data_url-scheme-only", body(data_url="https://"), "key", 400, "data_url"),
    ("data_url-relative", body(data_url="/a.jpg"), "key", 400, "data_url"),
    ("data_url-empty", body(data_url=""), "key", 400, "data_url"),
    ("data_url-number", body(data_url=42), "key", 400, "data_url"),
    ("data_url-object", body(data_url={"href": "https://ex.com"}), "key", 400, "data_url"),
    ("data_url-too-long", body(data_url="https://ex.com/" + "a" * 2034), "key", 400, "data_url"),
    ("label_spec-missing", body(label_spec=MISSING), "key", 400, "label_spec"),
    ("label_spec-string", body(label_spec="Animal?"), "key", 400, "label_spec"),
    ("label_spec-array", body(label_spec=["cat", "dog"]), "key", 400, "label_spec"),
    ("label_spec-number", body(label_spec=1), "key", 400, "label_spec"),
    ("question-missing", spec(question=MISSING), "key", 400, "label_spec.question"),
    ("question-empty", spec(question=""), "key", 400, "label_spec.question"),
    ("question-blank", spec(question="  \t"), "key", 400, "label_spec.question"),
    ("question-not-string", spec(question=["Animal?"]), "key", 400, "label_spec.question"),
    ("question-too-long", spec(question="q" * 1001), "key", 400, "label_spec.question"),
    ("options-missing", spec(options=MISSING), "key", 400, "label_spec.options"),
    ("options-string", spec(options="cat,dog"), "key", 400, "label_spec.options"),
    ("options-object", spec(options={"cat": 1, "dog": 2}), "key", 400, "label_spec.options"),
    ("options-empty", spec(options=[]), "key", 400, "label_spec.options"),
    ("options-one", spec(options=["cat"]), "key", 400, "label_spec.options"),
    ("options-duplicate", spec(options=["cat", "dog", "cat"]), "key", 400, "label_spec.options"),
    ("options-empty-string", spec(options=["cat", ""]), "key", 400, "label_spec.options[1]"),
    ("options-blank-string", spec(options=[" ", "dog"]), "key", 400, "label_spec.options[0]"),
    ("options-non-string", spec(options=["cat", 2]), "key", 400, "label_spec.options[1]"),
    ("options-null-entry", spec(options=["cat", None]), "key", 400, "label_spec.options[1]"),
    ("options-51", spec(options=[f"o{i}" for i in range(51)]), "key", 400, "label_spec.options"),
    ("option-too-long", spec(options=["cat", "d" * 201]), "key", 400, "label_spec.options[1]"),
    ("threshold-1", body(consensus_threshold=1), "key", 400, "consensus_threshold"),
    ("threshold-11", body(consensus_threshold=11), "key", 400, "consensus_threshold"),
    ("threshold-0", body(consensus_threshold=0), "key", 400, "consensus_threshold"),
    ("threshold-negative", body(consensus_threshold=-3), "key", 400, "consensus_threshold"),
    ("threshold-huge", body(consensus_threshold=2**70), "key", 400, "consensus_threshold"),
    ("threshold-string", body(consensus_threshold="3"), "key", 400, "consensus_threshold"),
    ("threshold-float", body(consensus_threshold=3.5), "key", 400, "consensus_threshold"),
    ("threshold-bool", body(consensus_threshold=True), "key", 400, "consensus_threshold"),
    ("callback_url-http", body(callback_url="http://ex.com/h"), "key", 400, "callback_url"),
    ("callback_url-number", body(callback_url=1), "key", 400, "callback_url"),
    ("idempotency_key-empty", body(idempotency_key=""), "key", 400, "idempotency_key"),
    ("idempotency_key-256", body(idempotency_key="k" * 256), "key", 400, "idempotency_key"),
    ("idempotency_key-number", body(idempotency_key=7), "key", 400, "idempotency_key"),
    ("consensus_method-unknown", body(consensus_method="vote"), "key", 400, "consensus_method"),
    ("consensus_method-wrong-case", body(consensus_method="Adaptive"), "key", 400, "consensus_method"),
    ("consensus_method-number", body(consensus_method=1), "key", 400, "consensus_method"),
    ("target_confidence-low", body(target_confidence=0.49), "key", 400, "target_confidence"),
    ("target_confidence-one", body(target_confidence=1), "key", 400, "target_confidence"),
    ("target_confidence-string", body(target_confidence="0.9"), "key", 400, "target_confidence"),
    ("max_labels-below-threshold", body(consensus_threshold=5, max_labels=4), "key", 400, "max_labels"),
    ("max_labels-51", body(max_labels=51), "key", 400, "max_labels"),
    ("max_labels-float", body(max_labels=4.0), "key", 400, "max_labels"),
    ("gold_label-not-an-option", body(gold_label="bird"), "key", 400, "gold_label"),
    ("gold_label-number", body(gold_label=1), "key", 400, "gold_label"),
    ("labor-unknown", body(labor="robots"), "key", 400, "labor"),
    ("labor-number", body(labor=1), "key", 400, "labor"),
    ("unknown-top-level", body(colour="red"), "key", 400, "colour"),
    ("unknown-typo", body(data_uri="https://ex.com/a.jpg"), "key", 400, "data_uri"),
    ("unknown-in-label_spec", spec(colour="red"), "key", 400, "label_spec.colour"),
    ("malformed-json", b'{"type": "sentiment",', "key", 400, "request body"),
    ("not-json", b"type=sentiment", "key", 400, "request body"),
    ("empty-body", b"", "key", 400, "request body"),
    ("json-array", b'[{"type": "sentiment"}]', "key", 400, "request body"),
    ("json-string", b'"task"', "key", 400, "request body"),
    ("json-null", b"null", "key", 400, "request body"),
    ("over-64KiB", spec(question="q" * (64 * 1024)), "key", 413, None),
    ("no-key", VALID, "none", 401, None),
    ("unknown-key", VALID, "unknown", 401, None),
    ("basic-auth", VALID, "basic", 401, None),
    ("revoked-key", VALID, "revoked", 401, None),
]

AUTH_ERRORS = {
    "none": "missing api key",
    "unknown": "invalid api key",
    "basic": "invalid api key",
    "revoked": "invalid api key",
}


def headers_for(how: str, key: str) -> dict[str, str]:
    return {
        "key": {"Authorization": f"Bearer {key}"},
        "revoked": {"Authorization": f"Bearer {key}"},
        "none": {},
        "unknown": {"Authorization": "Bearer sk_sandbox_" + "x" * 43},
        "basic": {"Authorization": f"Basic {key}"},
    }[how]


@pytest.mark.parametrize(
    ("request_body", "how", "status", "field"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_submit_rejects(
    stack: Stack,
    http: httpx.Client,
    request_body: dict[str, Any] | bytes,
    how: str,
    status: int,
    field: str | None,
) -> None:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    registered = http.post("/v1/customers", json={"name": "Test", "email": email})
    assert registered.status_code == 201, registered.text
    customer = registered.json()
    key = customer["api_key"]
    db_path = stack.data_dir / "asg.sqlite3"
    if how == "revoked":
        # The store is shared by processes by design: an operator revokes from outside.
        store = SQLiteStore(db_path)
        try:
            store.revoke_key(hash_token(key), time.time())
        finally:
            store.close()
    headers = {"Content-Type": "application/json", **headers_for(how, key)}
    if isinstance(request_body, bytes):
        reply = http.post("/v1/tasks", content=request_body, headers=headers)
    else:
        reply = http.post("/v1/tasks", json=request_body, headers=headers)

    assert reply.status_code == status, reply.text
    assert set(reply.json()) == {"error"}
    error = reply.json()["error"]
    if field is not None:
        assert re.match(re.escape(field) + r" ", error), error
    if status == 401:
        assert error == AUTH_ERRORS[how]

    # Nothing was stored: no task, no labels reserved.
    if how == "revoked":
        store = SQLiteStore(db_path)
        try:
            page = store.list_tasks(
                customer["customer_id"], status=None, batch_id=None, limit=1, after_task_id=None
            )
            assert page.tasks == []
            stored = store.get_customer(customer["customer_id"])
            assert stored is not None and stored.labels_reserved == 0
        finally:
            store.close()
    else:
        auth = {"Authorization": f"Bearer {key}"}
        assert http.get("/v1/tasks", headers=auth).json() == {"tasks": [], "next_cursor": None}
        profile = http.get("/v1/customers/me", headers=auth).json()
        assert (profile["labels_reserved"], profile["quota_remaining"]) == (0, 500)
