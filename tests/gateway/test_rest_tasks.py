"""Tasks over REST against the real stack: the seeds' examples (001, 002, 004), submission,
idempotency, batches, quota, reading tasks back and listing them.

Every test registers its own customer (the `auth` fixture), so it sees only its own tasks and
its own quota on the shared session stack.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register_webhook

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TASK_ID = re.compile(r"^tsk_[0-9a-f]{28}$")
BATCH_ID = re.compile(r"^bat_[0-9a-f]{28}$")
JSON = {"Content-Type": "application/json"}
SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
TASK_FIELDS = {
    "task_id", "status", "task_type", "data_url", "label_spec", "consensus_threshold",
    "callback_url", "idempotency_key", "batch_id", "created_at", "updated_at", "expires_at",
    "consensus_method", "target_confidence", "max_labels", "gold_label", "labor",
}  # fmt: skip


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    """One client for the module (overrides conftest's): a new client per test costs an SSL
    context, ~20 ms, which adds up over a hundred tests."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


def new_auth(http: httpx.Client) -> dict[str, str]:
    """The Authorization header of a customer registered just now (unique email)."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    reply = http.post("/v1/customers", json={"name": "Test", "email": email})
    assert reply.status_code == 201, reply.text
    return bearer(reply.json()["api_key"])


@pytest.fixture
def auth(http: httpx.Client) -> dict[str, str]:
    return new_auth(http)


def task(n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/{n}.jpg",
        "label_spec": SPEC,
        **extra,
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def me(http: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    reply = http.get("/v1/customers/me", headers=auth)
    assert reply.status_code == 200, reply.text
    return reply.json()


def all_tasks(http: httpx.Client, auth: dict[str, str], **query: str) -> list[dict[str, Any]]:
    """Every task of the customer, newest first, following next_cursor."""
    tasks: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "200", **query}
    while True:
        reply = http.get("/v1/tasks", params=params, headers=auth)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        tasks += page["tasks"]
        if page["next_cursor"] is None:
            return tasks
        params["cursor"] = page["next_cursor"]


def assert_stored(
    http: httpx.Client, auth: dict[str, str], *, task_count: int = 0, reserved: int = 0
) -> None:
    """The customer has exactly `task_count` tasks and `reserved` labels (default: nothing)."""
    assert len(all_tasks(http, auth)) == task_count
    profile = me(http, auth)
    assert profile["labels_reserved"] == reserved
    assert profile["quota_remaining"] == 500 - reserved


def submit(http: httpx.Client, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post("/v1/tasks", json=body, headers=auth)
    assert reply.status_code == 202, reply.text
    return reply.json()


def submit_batch(http: httpx.Client, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post("/v1/tasks/batch", json=body, headers=auth)
    assert reply.status_code == 202, reply.text
    return reply.json()


def get_task(http: httpx.Client, auth: dict[str, str], task_id: str) -> dict[str, Any]:
    reply = http.get(f"/v1/tasks/{task_id}", headers=auth)
    assert reply.status_code == 200, reply.text
    return reply.json()


def assert_accepted(body: dict[str, Any]) -> None:
    assert set(body) == {"task_id", "status", "created_at"}
    assert TASK_ID.match(body["task_id"]), body
    assert body["status"] == "pending"
    assert TIMESTAMP.match(body["created_at"]), body


# seed 001 (quickstart), as written --------------------------------------------------------


def test_quickstart_step2_submit_is_accepted_pending(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.post(
        "/v1/tasks",
        headers={**auth, **JSON},
        content=b"""{
"type": "image_classification",
"data_url": "https://example.com/image.jpg",
"label_spec": {
"question": "Animal?",
"options": ["cat", "dog"]
},
"consensus_threshold": 3
}""",
    )

    assert reply.status_code == 202, reply.text
    assert_accepted(reply.json())


def test_quickstart_step4_result_is_202_while_not_decided(http: httpx.Client, auth: dict[str, str]) -> None:
    task_id = submit(http, auth, task(consensus_threshold=3))["task_id"]

    reply = http.get(f"/v1/tasks/{task_id}/result", headers=auth)

    assert reply.status_code == 202
    body = reply.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == "pending"
    assert isinstance(body["message"], str) and body["message"]


# seed 002 (REST reference), as written ---------------------------------------------------


def test_reference_submit_status_and_result(http: httpx.Client, auth: dict[str, str]) -> None:
    submitted = http.post(
        "/v1/tasks",
        headers={**auth, **JSON},
        content=b'{"type":"image_classification","data_url":"https://example.com/i.jpg",'
        b'"label_spec":{"question":"Q?","options":["a","b"]}}',
    )
    assert submitted.status_code == 202, submitted.text
    assert_accepted(submitted.json())
    task_id = submitted.json()["task_id"]

    status = http.get(f"/v1/tasks/{task_id}", headers=auth)
    result = http.get(f"/v1/tasks/{task_id}/result", headers=auth)

    assert status.status_code == 200
    body = status.json()
    assert body["task_id"] == task_id
    assert body["status"] == "pending"
    assert body["task_type"] == "image_classification"
    assert body["data_url"] == "https://example.com/i.jpg"
    assert body["created_at"] == submitted.json()["created_at"]
    assert TIMESTAMP.match(body["created_at"])
    assert result.status_code == 202
    assert result.json()["status"] == "pending"


def test_reference_batch(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.post(
        "/v1/tasks/batch",
        headers={**auth, **JSON},
        content=b'{"tasks":[{"type":"image_classification","data_url":"https://ex.com/a.jpg",'
        b'"label_spec":{"question":"Q?","options":["a","b"]}}]}',
    )

    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert BATCH_ID.match(body["batch_id"]), body
    assert (body["task_count"], body["status"]) == (1, "accepted")
    [task_id] = body["task_ids"]
    assert get_task(http, auth, task_id)["batch_id"] == body["batch_id"]


# seed 004 (submitting tasks), as written ---------------------------------------------------

SEED_004_SINGLE = b"""{
"type": "text_classification",
"data_url": "https://cdn.example.com/doc.txt",
"label_spec": {
"question": "Document category?",
"options": ["invoice", "receipt", "other"]
},
"consensus_threshold": 3,
"idempotency_key": "order-10042-line-3"
}"""


def test_submitting_single_task_then_idempotent_replay(http: httpx.Client, auth: dict[str, str]) -> None:
    first = http.post("/v1/tasks", headers={**auth, **JSON}, content=SEED_004_SINGLE)
    replay = http.post("/v1/tasks", headers={**auth, **JSON}, content=SEED_004_SINGLE)

    assert first.status_code == 202, first.text
    assert_accepted(first.json())
    assert replay.status_code == 200, replay.text
    assert replay.json() == {**first.json(), "idempotent": True}
    stored = get_task(http, auth, first.json()["task_id"])
    assert stored["task_type"] == "text_classification"
    assert stored["label_spec"] == {
        "question": "Document category?",
        "options": ["invoice", "receipt", "other"],
    }
    assert stored["idempotency_key"] == "order-10042-line-3"


def test_submitting_validation_error_example(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.post("/v1/tasks", headers=auth, json=task(label_spec={"options": ["cat", "dog"]}))

    assert reply.status_code == 400
    assert reply.json() == {"error": "label_spec.question is required"}


def test_submitting_batch_example_applies_callback_url(http: httpx.Client, auth: dict[str, str]) -> None:
    register_webhook(str(http.base_url), auth["Authorization"].split()[1], "https://example.com/hooks/asg")
    reply = http.post(
        "/v1/tasks/batch",
        headers={**auth, **JSON},
        content=b"""{
"callback_url": "https://example.com/hooks/asg",
"tasks": [
{
"type": "image_classification",
"data_url": "https://cdn.example.com/a.jpg",
"label_spec": {"question": "Animal?", "options": ["cat", "dog"]}
},
{
"type": "image_classification",
"data_url": "https://cdn.example.com/b.jpg",
"label_spec": {"question": "Animal?", "options": ["cat", "dog"]}
}
]
}""",
    )

    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert BATCH_ID.match(body["batch_id"])
    assert (body["task_count"], body["status"]) == (2, "accepted")
    stored = [get_task(http, auth, t) for t in body["task_ids"]]
    assert [t["data_url"] for t in stored] == [
        "https://cdn.example.com/a.jpg",
        "https://cdn.example.com/b.jpg",
    ]
    assert {t["callback_url"] for t in stored} == {"https://example.com/hooks/asg"}
    assert {t["batch_id"] for t in stored} == {body["batch_id"]}


# submit and read back -------------------------------------------------------------------


def test_get_task_returns_what_was_submitted(http: httpx.Client, auth: dict[str, str]) -> None:
    register_webhook(str(http.base_url), auth["Authorization"].split()[1], "https://hooks.example.com/asg")
    accepted = submit(
        http,
        auth,
        task(7, consensus_threshold=5, callback_url="https://hooks.example.com/asg",
             idempotency_key="k-7"),
    )  # fmt: skip

    body = get_task(http, auth, accepted["task_id"])

    assert set(body) == TASK_FIELDS
    assert body == {
        "task_id": accepted["task_id"],
        "status": "pending",
        "task_type": "image_classification",
        "data_url": "https://cdn.example.com/7.jpg",
        "label_spec": SPEC,
        "consensus_threshold": 5,
        "callback_url": "https://hooks.example.com/asg",
        "idempotency_key": "k-7",
        "batch_id": None,
        "created_at": accepted["created_at"],
        "updated_at": body["updated_at"],
        "expires_at": None,
        "consensus_method": "majority",
        "target_confidence": 0.95,
        "max_labels": 10,
        "gold_label": None,
        "labor": "any",
    }
    assert TIMESTAMP.match(body["updated_at"])


def test_an_adaptive_gold_task_shows_its_fields_to_its_owner_only(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    fields = {"consensus_method": "adaptive", "target_confidence": 0.9, "max_labels": 6, "gold_label": "cat"}
    task_id = submit(http, auth, task(8, consensus_threshold=2, **fields))["task_id"]

    body = get_task(http, auth, task_id)
    assert {k: body[k] for k in fields} == fields
    listed = http.get("/v1/tasks", headers=auth).json()["tasks"]
    assert [t["gold_label"] for t in listed if t["task_id"] == task_id] == ["cat"]
    other = new_auth(http)
    assert http.get(f"/v1/tasks/{task_id}", headers=other).status_code == 404
    assert all(t["task_id"] != task_id for t in http.get("/v1/tasks", headers=other).json()["tasks"])


def test_get_task_shows_defaults_and_nulls_for_absent_fields(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    body = get_task(http, auth, submit(http, auth, task())["task_id"])

    assert body["consensus_threshold"] == 3
    assert (body["callback_url"], body["idempotency_key"], body["batch_id"]) == (None, None, None)


@pytest.mark.parametrize(
    "task_type", ["image_classification", "text_classification", "sentiment", "moderation"]
)
def test_submit_accepts_each_task_type(http: httpx.Client, auth: dict[str, str], task_type: str) -> None:
    accepted = submit(http, auth, task(type=task_type))

    assert get_task(http, auth, accepted["task_id"])["task_type"] == task_type


@pytest.mark.parametrize("threshold", [2, 10])
def test_submit_accepts_threshold_bounds_and_reserves_them(
    http: httpx.Client, auth: dict[str, str], threshold: int
) -> None:
    submit(http, auth, task(consensus_threshold=threshold))

    assert me(http, auth)["labels_reserved"] == threshold


def test_submit_accepts_limits_at_their_edge(http: httpx.Client, auth: dict[str, str]) -> None:
    url = "https://cdn.example.com/" + "a" * (2048 - len("https://cdn.example.com/"))
    spec = {"question": "q" * 1000, "options": [f"{i:03d}" + "o" * 197 for i in range(50)]}

    accepted = submit(http, auth, task(data_url=url, label_spec=spec, idempotency_key="k" * 255))

    stored = get_task(http, auth, accepted["task_id"])
    assert (stored["data_url"], stored["label_spec"]) == (url, spec)


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with whitespace to exactly `size` bytes."""
    raw = httpx.Request("POST", "http://x", json=body).content
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_submit_body_of_exactly_64_kib_is_accepted(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.post("/v1/tasks", headers={**auth, **JSON}, content=padded(task(), 64 * 1024))

    assert reply.status_code == 202, reply.text


def test_submit_streamed_body_over_64_kib_is_413(http: httpx.Client, auth: dict[str, str]) -> None:
    body = padded(task(), 64 * 1024 + 1)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the gateway must count as it reads
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    reply = http.post("/v1/tasks", headers={**auth, **JSON}, content=chunks())

    assert reply.status_code == 413
    assert set(reply.json()) == {"error"}
    assert_stored(http, auth)


def test_another_customers_task_is_404_like_a_missing_one(http: httpx.Client, auth: dict[str, str]) -> None:
    task_id = submit(http, auth, task())["task_id"]
    other = new_auth(http)
    missing = "tsk_" + "0" * 28

    for path in (f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}/result"):
        foreign = http.get(path, headers=other)
        absent = http.get(path.replace(task_id, missing), headers=other)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == absent.json()
        assert set(foreign.json()) == {"error"}
    assert get_task(http, auth, task_id)["task_id"] == task_id


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/tasks/tsk_0000", "/v1/tasks/tsk_0000/result"])
def test_reading_tasks_needs_a_key(http: httpx.Client, path: str) -> None:
    reply = http.get(path)

    assert reply.status_code == 401
    assert reply.json() == {"error": "missing api key"}


# idempotency ----------------------------------------------------------------------------


def test_replay_returns_the_first_task_and_charges_once(http: httpx.Client, auth: dict[str, str]) -> None:
    body = task(idempotency_key="order-1")
    first = submit(http, auth, body)

    replays = [http.post("/v1/tasks", json=body, headers=auth) for _ in range(3)]

    for replay in replays:
        assert replay.status_code == 200
        assert replay.json() == {**first, "idempotent": True}
    assert [t["task_id"] for t in all_tasks(http, auth)] == [first["task_id"]]
    assert me(http, auth)["labels_reserved"] == 3


def test_replay_ignores_key_order_whitespace_and_explicit_defaults(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    first = http.post(
        "/v1/tasks",
        headers={**auth, **JSON},
        content=b'{"type":"sentiment","data_url":"https://ex.com/r.txt","idempotency_key":"r-1",'
        b'"label_spec":{"question":"Tone?","options":["positive","negative"]}}',
    )
    replay = http.post(
        "/v1/tasks",
        headers={**auth, **JSON},
        content=b'{\n  "idempotency_key" : "r-1",\n  "consensus_threshold": 3,\n'
        b'  "label_spec": {"options": [ "positive" , "negative" ], "question": "Tone?"},\n'
        b'  "data_url": "https://ex.com/r.txt",\t"type": "sentiment"\n}\n',
    )

    assert first.status_code == 202, first.text
    assert replay.status_code == 200, replay.text
    assert replay.json()["task_id"] == first.json()["task_id"]
    assert replay.json()["idempotent"] is True


THREE = {"question": "Animal?", "options": ["cat", "dog", "bird"]}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"type": "moderation"}, id="type"),
        pytest.param({"data_url": "https://cdn.example.com/other.jpg"}, id="data_url"),
        pytest.param({"label_spec": {**THREE, "question": "Pet?"}}, id="question"),
        pytest.param({"label_spec": {**THREE, "options": ["cat", "dog"]}}, id="options"),
        pytest.param({"consensus_threshold": 4}, id="threshold"),
        pytest.param({"callback_url": "https://hooks.example.com/x"}, id="callback_url"),
        # The same characters, one option moved into the question: still another body.
        pytest.param(
            {"label_spec": {"question": "Animal?\x1fcat", "options": ["dog", "bird"]}},
            id="option-moved-into-question",
        ),
    ],
)
def test_same_key_with_another_body_is_409(
    http: httpx.Client, auth: dict[str, str], change: dict[str, Any]
) -> None:
    register_webhook(str(http.base_url), auth["Authorization"].split()[1], "https://hooks.example.com/x")
    base = task(label_spec=THREE, idempotency_key="same")
    first = submit(http, auth, base)

    reply = http.post("/v1/tasks", json={**base, **change}, headers=auth)

    assert reply.status_code == 409, reply.text
    assert "idempotency_key" in reply.json()["error"]
    assert [t["task_id"] for t in all_tasks(http, auth)] == [first["task_id"]]
    assert me(http, auth)["labels_reserved"] == 3


def test_idempotency_keys_are_per_customer(http: httpx.Client, auth: dict[str, str]) -> None:
    other = new_auth(http)
    mine = submit(http, auth, task(idempotency_key="shared"))

    theirs = http.post("/v1/tasks", json=task(idempotency_key="shared"), headers=other)
    # From now on the key is bound for the other customer too, to its own task.
    theirs_with_other_body = http.post("/v1/tasks", json=task(9, idempotency_key="shared"), headers=other)

    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["task_id"] != mine["task_id"]
    assert theirs_with_other_body.status_code == 409
    assert get_task(http, other, theirs.json()["task_id"])["idempotency_key"] == "shared"
    assert me(http, other)["labels_reserved"] == 3
    assert me(http, auth)["labels_reserved"] == 3


def test_different_keys_make_different_tasks(http: httpx.Client, auth: dict[str, str]) -> None:
    a = submit(http, auth, task(idempotency_key="a"))
    b = submit(http, auth, task(idempotency_key="b"))
    c = submit(http, auth, task())
    d = submit(http, auth, task())

    assert len({a["task_id"], b["task_id"], c["task_id"], d["task_id"]}) == 4
    assert me(http, auth)["labels_reserved"] == 12


# batches --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def roomy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose sandbox quota holds a full batch of 1000 tasks (at least 2000 labels)."""
    with make_stack(tmp_path_factory.mktemp("roomy"), ASG_SANDBOX_LABEL_QUOTA="10000") as s:
        yield s


def test_batch_of_1000_tasks_is_stored_whole_in_order(roomy_stack: Stack) -> None:
    with httpx.Client(base_url=roomy_stack.base_url, timeout=30) as http:
        auth = new_auth(http)

        body = submit_batch(http, auth, {"tasks": [task(i) for i in range(1000)]})

        assert (body["task_count"], body["status"]) == (1000, "accepted")
        assert BATCH_ID.match(body["batch_id"])
        assert len(set(body["task_ids"])) == 1000
        for i, task_id in enumerate(body["task_ids"]):
            stored = get_task(http, auth, task_id)
            assert (stored["batch_id"], stored["data_url"]) == (
                body["batch_id"],
                f"https://cdn.example.com/{i}.jpg",
            )
        listed = all_tasks(http, auth, batch_id=body["batch_id"])
        assert {t["task_id"] for t in listed} == set(body["task_ids"])
        assert me(http, auth)["labels_reserved"] == 3000


@pytest.mark.parametrize(
    ("bad", "error_prefix"),
    [
        pytest.param({"type": "video"}, "tasks[{k}].type ", id="type"),
        pytest.param({"data_url": "http://ex.com/a.jpg"}, "tasks[{k}].data_url ", id="data_url"),
        pytest.param({"label_spec": {"options": ["a", "b"]}}, "tasks[{k}].label_spec.question ",
                     id="question"),
        pytest.param({"label_spec": {"question": "Q", "options": ["a"]}},
                     "tasks[{k}].label_spec.options ", id="one-option"),
        pytest.param({"label_spec": {"question": "Q", "options": ["a", 2]}},
                     "tasks[{k}].label_spec.options[1] ", id="non-string-option"),
        pytest.param({"consensus_threshold": 11}, "tasks[{k}].consensus_threshold ", id="threshold"),
        pytest.param({"consensus_threshold": "3"}, "tasks[{k}].consensus_threshold ",
                     id="threshold-string"),
        pytest.param({"colour": "red"}, "tasks[{k}].colour ", id="unknown-field"),
        pytest.param({"label_spec": {**SPEC, "colour": "red"}}, "tasks[{k}].label_spec.colour ",
                     id="unknown-spec-field"),
        pytest.param(None, "tasks[{k}] ", id="not-an-object"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("k", [0, 3, 9])
def test_batch_with_one_bad_task_is_400_naming_it_and_stores_nothing(
    http: httpx.Client, auth: dict[str, str], bad: dict[str, Any] | None, error_prefix: str, k: int
) -> None:
    tasks: list[Any] = [task(i) for i in range(10)]
    tasks[k] = "not a task" if bad is None else {**tasks[k], **bad}

    reply = http.post("/v1/tasks/batch", json={"tasks": tasks}, headers=auth)

    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(error_prefix.format(k=k)), reply.json()
    assert_stored(http, auth)


@pytest.mark.parametrize(
    ("body", "error_prefix"),
    [
        pytest.param({"tasks": []}, "tasks ", id="empty"),
        pytest.param({"tasks": [task(i) for i in range(1001)]}, "tasks ", id="1001-tasks"),
        pytest.param({}, "tasks ", id="tasks-missing"),
        pytest.param({"tasks": task()}, "tasks ", id="tasks-not-array"),
        pytest.param({"tasks": [task()], "priority": 1}, "priority ", id="unknown-field"),
        pytest.param({"tasks": [task()], "callback_url": "http://ex.com/h"}, "callback_url ",
                     id="http-callback"),
        pytest.param({"tasks": [task(0, idempotency_key="x"), task(1, idempotency_key="x")]},
                     "tasks[1].idempotency_key ", id="key-repeated-in-batch"),
        pytest.param({"tasks": [task()], "labor": "robots"}, "labor must be one of any, challenge",
                     id="unknown-labor"),
        pytest.param({"tasks": [task(0), task(1, labor="")]}, "tasks[1].labor must be one of",
                     id="task-labor-empty"),
    ],
)  # fmt: skip
def test_bad_batch_is_400_and_stores_nothing(
    http: httpx.Client, auth: dict[str, str], body: dict[str, Any], error_prefix: str
) -> None:
    reply = http.post("/v1/tasks/batch", json=body, headers=auth)

    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(error_prefix), reply.json()
    assert_stored(http, auth)


def test_batch_body_over_8_mib_is_413_and_stores_nothing(http: httpx.Client, auth: dict[str, str]) -> None:
    body = padded({"tasks": [task(0)]}, 8 * 1024 * 1024 + 1)

    reply = http.post("/v1/tasks/batch", headers={**auth, **JSON}, content=body)

    assert reply.status_code == 413
    assert set(reply.json()) == {"error"}
    assert_stored(http, auth)


def test_batch_body_of_exactly_8_mib_is_accepted(http: httpx.Client, auth: dict[str, str]) -> None:
    body = padded({"tasks": [task(0)]}, 8 * 1024 * 1024)

    reply = http.post("/v1/tasks/batch", headers={**auth, **JSON}, content=body)

    assert reply.status_code == 202, reply.text


def test_batch_callback_url_applies_to_tasks_without_their_own(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    for url in ("https://hooks.example.com/batch", "https://hooks.example.com/own"):
        register_webhook(str(http.base_url), auth["Authorization"].split()[1], url)
    body = submit_batch(
        http,
        auth,
        {
            "callback_url": "https://hooks.example.com/batch",
            "tasks": [task(0), task(1, callback_url="https://hooks.example.com/own")],
        },
    )

    stored = [get_task(http, auth, t) for t in body["task_ids"]]
    assert [t["callback_url"] for t in stored] == [
        "https://hooks.example.com/batch",
        "https://hooks.example.com/own",
    ]


def test_batch_labor_opts_in_the_tasks_that_name_none(http: httpx.Client, auth: dict[str, str]) -> None:
    """docs/api.md: a batch's `labor` applies to its tasks without their own, as callback_url."""
    body = submit_batch(http, auth, {"labor": "challenge", "tasks": [task(0), task(1, labor="any")]})

    assert [get_task(http, auth, t)["labor"] for t in body["task_ids"]] == ["challenge", "any"]


def test_batch_replays_a_key_already_used_without_charging_it(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    earlier = submit(http, auth, task(0, idempotency_key="line-1"))

    body = submit_batch(
        http,
        auth,
        {"tasks": [task(1, consensus_threshold=2), task(0, idempotency_key="line-1")]},
    )

    assert body["task_count"] == 2
    assert body["task_ids"][1] == earlier["task_id"]
    assert body["task_ids"][0] != earlier["task_id"]
    assert len(all_tasks(http, auth)) == 2
    assert me(http, auth)["labels_reserved"] == 3 + 2
    assert get_task(http, auth, earlier["task_id"])["batch_id"] is None


def test_single_submit_replays_a_key_first_used_in_a_batch(http: httpx.Client, auth: dict[str, str]) -> None:
    body = submit_batch(http, auth, {"tasks": [task(0, idempotency_key="b-0")]})

    replay = http.post("/v1/tasks", json=task(0, idempotency_key="b-0"), headers=auth)

    assert replay.status_code == 200
    assert replay.json()["task_id"] == body["task_ids"][0]
    assert replay.json()["idempotent"] is True


@pytest.mark.parametrize("size", [1, 3])
def test_batch_reusing_a_key_with_another_body_is_409_naming_the_task(
    http: httpx.Client, auth: dict[str, str], size: int
) -> None:
    submit(http, auth, task(0, idempotency_key="used"))
    tasks = [task(i + 1) for i in range(size)]
    tasks[-1] = task(99, idempotency_key="used")

    reply = http.post("/v1/tasks/batch", json={"tasks": tasks}, headers=auth)

    assert reply.status_code == 409, reply.text
    assert reply.json()["error"].startswith(f"tasks[{size - 1}].idempotency_key "), reply.json()
    assert_stored(http, auth, task_count=1, reserved=3)


# quota ----------------------------------------------------------------------------------


def test_new_customer_has_500_labels(http: httpx.Client, auth: dict[str, str]) -> None:
    profile = me(http, auth)

    assert (profile["label_quota"], profile["labels_reserved"], profile["quota_remaining"]) == (
        500,
        0,
        500,
    )


def test_quota_holds_exactly_500_labels(http: httpx.Client, auth: dict[str, str]) -> None:
    submit_batch(http, auth, {"tasks": [task(i) for i in range(166)]})
    assert (me(http, auth)["labels_reserved"], me(http, auth)["quota_remaining"]) == (498, 2)

    over = http.post("/v1/tasks", json=task(166, consensus_threshold=3), headers=auth)
    assert over.status_code == 403
    customer_id = me(http, auth)["customer_id"]
    assert over.json() == {
        "error": "quota exhausted",
        "limit": 500,
        "used": 498,
        "requested": 3,
        "hint": "3 labels requested, 2 of 500 left; an operator moves the customer to a tier with a"
        f" bigger quota: asg customer tier {customer_id} pro (docs/billing.md)",
    }
    assert_stored(http, auth, task_count=166, reserved=498)

    submit(http, auth, task(167, consensus_threshold=2))
    assert (me(http, auth)["labels_reserved"], me(http, auth)["quota_remaining"]) == (500, 0)

    full = http.post("/v1/tasks", json=task(168, consensus_threshold=2), headers=auth)
    assert full.status_code == 403
    assert {k: full.json()[k] for k in ("error", "limit", "used", "requested")} == {
        "error": "quota exhausted",
        "limit": 500,
        "used": 500,
        "requested": 2,
    }
    assert len(all_tasks(http, auth)) == 167


def test_batch_that_does_not_fit_is_403_and_stores_nothing(http: httpx.Client, auth: dict[str, str]) -> None:
    submit(http, auth, task(consensus_threshold=10))

    reply = http.post(
        "/v1/tasks/batch",
        json={"tasks": [task(i, consensus_threshold=10) for i in range(50)]},
        headers=auth,
    )

    assert reply.status_code == 403
    body = reply.json()
    assert {k: body[k] for k in ("error", "limit", "used", "requested")} == {
        "error": "quota exhausted",
        "limit": 500,
        "used": 10,
        "requested": 500,
    }
    assert f"asg customer tier {me(http, auth)['customer_id']} pro" in body["hint"]
    assert_stored(http, auth, task_count=1, reserved=10)


def test_replay_still_answers_once_the_quota_is_used_up(http: httpx.Client, auth: dict[str, str]) -> None:
    first = submit(http, auth, task(0, consensus_threshold=10, idempotency_key="q"))
    submit_batch(http, auth, {"tasks": [task(i, consensus_threshold=10) for i in range(1, 50)]})

    replay = http.post("/v1/tasks", json=task(0, consensus_threshold=10, idempotency_key="q"), headers=auth)

    assert replay.status_code == 200, replay.text
    assert replay.json()["task_id"] == first["task_id"]
    assert me(http, auth)["quota_remaining"] == 0


def test_concurrent_batches_never_reserve_more_than_the_quota(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    # 20 batches of 50 labels each race for 500 labels: exactly 10 can fit.
    def send(n: int) -> int:
        tasks = [task(n * 10 + i, consensus_threshold=10) for i in range(5)]
        return http.post("/v1/tasks/batch", json={"tasks": tasks}, headers=auth).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(send, range(20)))

    assert statuses == [202] * 10 + [403] * 10
    assert_stored(http, auth, task_count=50, reserved=500)


def test_concurrent_replays_create_one_task(http: httpx.Client, auth: dict[str, str]) -> None:
    body = task(idempotency_key="raced")

    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: http.post("/v1/tasks", json=body, headers=auth), range(10)))

    assert sorted(r.status_code for r in replies) == [200] * 9 + [202]
    assert len({r.json()["task_id"] for r in replies}) == 1
    assert_stored(http, auth, task_count=1, reserved=3)


# listing --------------------------------------------------------------------------------


def test_list_is_newest_first_and_pages_with_next_cursor(http: httpx.Client, auth: dict[str, str]) -> None:
    ids = [submit(http, auth, task(i))["task_id"] for i in range(5)]

    pages = []
    params = {"limit": "2"}
    while True:
        page = http.get("/v1/tasks", params=params, headers=auth).json()
        pages.append([t["task_id"] for t in page["tasks"]])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


def test_list_default_page_and_task_fields(http: httpx.Client, auth: dict[str, str]) -> None:
    submit_batch(http, auth, {"tasks": [task(i) for i in range(55)]})

    page = http.get("/v1/tasks", headers=auth).json()

    assert len(page["tasks"]) == 50
    assert isinstance(page["next_cursor"], str)
    assert all(set(t) == TASK_FIELDS for t in page["tasks"])
    rest = http.get("/v1/tasks", params={"cursor": page["next_cursor"]}, headers=auth).json()
    assert (len(rest["tasks"]), rest["next_cursor"]) == (5, None)


def test_list_shows_only_the_callers_tasks(http: httpx.Client, auth: dict[str, str]) -> None:
    mine = submit(http, auth, task())["task_id"]
    other = new_auth(http)
    submit(http, other, task())

    assert [t["task_id"] for t in all_tasks(http, auth)] == [mine]


def test_list_filters_by_status_and_batch(http: httpx.Client, auth: dict[str, str]) -> None:
    single = submit(http, auth, task())["task_id"]
    batch = submit_batch(http, auth, {"tasks": [task(1), task(2)]})

    pending = all_tasks(http, auth, status="pending")
    settled = all_tasks(http, auth, status="settled")
    in_batch = all_tasks(http, auth, batch_id=batch["batch_id"])

    assert {t["task_id"] for t in pending} == {single, *batch["task_ids"]}
    assert settled == []
    assert [t["task_id"] for t in in_batch] == batch["task_ids"][::-1]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"status": "done"}, "status", id="unknown-status"),
        pytest.param({"status": "PENDING"}, "status", id="status-upper-case"),
        pytest.param({"limit": "0"}, "limit", id="limit-0"),
        pytest.param({"limit": "-1"}, "limit", id="limit-negative"),
        pytest.param({"limit": "201"}, "limit", id="limit-201"),
        pytest.param({"limit": "ten"}, "limit", id="limit-not-integer"),
        pytest.param({"cursor": "not-a-cursor"}, "cursor", id="bad-cursor"),
    ],
)
def test_list_rejects_bad_query_naming_the_parameter(
    http: httpx.Client, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    reply = http.get("/v1/tasks", params=params, headers=auth)

    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(f"{field} "), reply.json()


def test_list_accepts_limit_bounds(http: httpx.Client, auth: dict[str, str]) -> None:
    submit_batch(http, auth, {"tasks": [task(i) for i in range(3)]})

    one = http.get("/v1/tasks", params={"limit": "1"}, headers=auth)
    most = http.get("/v1/tasks", params={"limit": "200"}, headers=auth)

    assert (one.status_code, len(one.json()["tasks"])) == (200, 1)
    assert (most.status_code, len(most.json()["tasks"])) == (200, 3)


def test_list_of_a_new_customer_is_empty(http: httpx.Client, auth: dict[str, str]) -> None:
    reply = http.get("/v1/tasks", headers=auth)

    assert reply.status_code == 200
    assert reply.json() == {"tasks": [], "next_cursor": None}


def test_unknown_batch_lists_nothing(http: httpx.Client, auth: dict[str, str]) -> None:
    submit(http, auth, task())

    assert all_tasks(http, auth, batch_id="bat_" + uuid.uuid4().hex) == []


# batch progress -------------------------------------------------------------------------


def test_batch_progress_counts_every_status_and_is_customer_scoped(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    body = submit_batch(http, auth, {"tasks": [task(1), task(2), task(3)]})
    http.delete(f"/v1/tasks/{body['task_ids'][0]}", headers=auth)
    reply = http.get(f"/v1/tasks/batch/{body['batch_id']}", headers=auth)
    assert reply.status_code == 200, reply.text
    progress = reply.json()
    assert progress["batch_id"] == body["batch_id"] and progress["total"] == 3
    assert set(progress["counts"]) == {
        "pending",
        "in_progress",
        "verified",
        "settled",
        "failed",
        "cancelled",
        "expired",
    }
    assert progress["counts"]["cancelled"] == 1 and progress["decided"] == 1
    assert sum(progress["counts"].values()) == 3
    other = new_auth(http)
    for headers, batch_id in ((other, body["batch_id"]), (auth, "bat_" + uuid.uuid4().hex)):
        missing = http.get(f"/v1/tasks/batch/{batch_id}", headers=headers)
        assert missing.status_code == 404, missing.text


def test_sdk_get_batch_answers_the_same_counts(
    stack: Stack, http: httpx.Client, auth: dict[str, str]
) -> None:
    from asg_gateway import ASGGatewayClient

    body = submit_batch(http, auth, {"tasks": [task(7), task(8)]})
    key = auth["Authorization"].removeprefix("Bearer ")
    with ASGGatewayClient(key, stack.base_url) as client:
        assert (
            client.get_batch(body["batch_id"])
            == http.get(f"/v1/tasks/batch/{body['batch_id']}", headers=auth).json()
        )
