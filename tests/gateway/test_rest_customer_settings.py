"""A customer's own default consensus method: `PATCH /v1/customers/me` (docs/api.md, "Customer
settings"). The order that decides a task's method: the task's own `consensus_method`, then the
customer's default, then the deployment's `ASG_CONSENSUS_METHOD`. Real stacks over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def task(**fields: object) -> dict[str, object]:
    return {
        "type": "image_classification",
        "data_url": "https://example.com/cat.jpg",
        "label_spec": {"question": "Cat?", "options": ["cat", "dog"]},
        **fields,
    }


def method_of(http: httpx.Client, headers: dict[str, str], **fields: object) -> str:
    """The consensus method of a task submitted with `fields`, as GET /v1/tasks/{id} shows it."""
    reply = http.post("/v1/tasks", json=task(**fields), headers=headers)
    assert reply.status_code == 202, reply.text
    shown = http.get(f"/v1/tasks/{reply.json()['task_id']}", headers=headers)
    assert shown.status_code == 200, shown.text
    method: str = shown.json()["consensus_method"]
    return method


def patch(http: httpx.Client, headers: dict[str, str], body: object) -> httpx.Response:
    return http.patch("/v1/customers/me", json=body, headers=headers)


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def adaptive_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A deployment whose operator made `adaptive` the default."""
    with make_stack(Path(tmp_path_factory.mktemp("adaptive")), ASG_CONSENSUS_METHOD="adaptive") as s:
        yield s


def test_a_new_customer_has_no_default_of_its_own(http: httpx.Client, stack: Stack) -> None:
    headers = bearer(register(stack.base_url)["api_key"])

    assert http.get("/v1/customers/me", headers=headers).json()["consensus_method"] is None
    assert method_of(http, headers) == "majority"


def test_the_customer_default_decides_its_tasks_that_name_none(http: httpx.Client, stack: Stack) -> None:
    headers = bearer(register(stack.base_url)["api_key"])

    reply = patch(http, headers, {"consensus_method": "adaptive"})

    assert reply.status_code == 200, reply.text
    assert reply.json()["consensus_method"] == "adaptive"
    assert http.get("/v1/customers/me", headers=headers).json()["consensus_method"] == "adaptive"
    assert method_of(http, headers) == "adaptive"
    assert method_of(http, headers, consensus_method="majority") == "majority"  # the task's wins
    batch = http.post("/v1/tasks/batch", json={"tasks": [task()]}, headers=headers)
    assert batch.status_code == 202, batch.text
    [task_id] = batch.json()["task_ids"]
    assert http.get(f"/v1/tasks/{task_id}", headers=headers).json()["consensus_method"] == "adaptive"
    # Another customer's tasks are not affected.
    other = bearer(register(stack.base_url)["api_key"])
    assert method_of(http, other) == "majority"


def test_null_hands_the_choice_back_to_the_deployment(http: httpx.Client, stack: Stack) -> None:
    headers = bearer(register(stack.base_url)["api_key"])
    assert patch(http, headers, {"consensus_method": "adaptive"}).status_code == 200

    reply = patch(http, headers, {"consensus_method": None})

    assert reply.status_code == 200, reply.text
    assert reply.json()["consensus_method"] is None
    assert method_of(http, headers) == "majority"


def test_an_empty_patch_changes_nothing(http: httpx.Client, stack: Stack) -> None:
    headers = bearer(register(stack.base_url)["api_key"])
    assert patch(http, headers, {"consensus_method": "adaptive"}).status_code == 200
    before = http.get("/v1/customers/me", headers=headers).json()

    reply = patch(http, headers, {})

    assert reply.status_code == 200, reply.text
    assert reply.json() == before


def test_the_customer_default_overrides_the_deployment_default(adaptive_stack: Stack) -> None:
    headers = bearer(register(adaptive_stack.base_url)["api_key"])
    with httpx.Client(base_url=adaptive_stack.base_url, timeout=30) as http:
        assert method_of(http, headers) == "adaptive"  # the operator's setting

        assert patch(http, headers, {"consensus_method": "majority"}).status_code == 200
        assert method_of(http, headers) == "majority"  # the customer's
        assert method_of(http, headers, consensus_method="adaptive") == "adaptive"  # the task's

        assert patch(http, headers, {"consensus_method": None}).status_code == 200
        assert method_of(http, headers) == "adaptive"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"consensus_method": "vote"}, "consensus_method", id="unknown"),
        pytest.param({"consensus_method": "Adaptive"}, "consensus_method", id="wrong-case"),
        pytest.param({"consensus_method": 1}, "consensus_method", id="number"),
        pytest.param({"consensus_method": ["adaptive"]}, "consensus_method", id="array"),
        pytest.param({"tier": "pro"}, "tier", id="not-a-setting"),
    ],
)
def test_a_bad_setting_is_a_400_naming_the_field(
    http: httpx.Client, stack: Stack, body: dict[str, object], field: str
) -> None:
    headers = bearer(register(stack.base_url)["api_key"])

    reply = patch(http, headers, body)

    assert reply.status_code == 400, reply.text
    assert set(reply.json()) == {"error"}
    assert reply.json()["error"].startswith(f"{field} "), reply.json()
    assert http.get("/v1/customers/me", headers=headers).json()["consensus_method"] is None


def test_the_settings_need_a_valid_key(http: httpx.Client) -> None:
    reply = patch(http, bearer("sk_sandbox_not-a-key"), {"consensus_method": "adaptive"})

    assert reply.status_code == 401
    assert reply.json() == {"error": "invalid api key"}
