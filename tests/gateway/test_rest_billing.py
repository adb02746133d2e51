"""Billing over REST, as a customer sees it: GET /v1/billing/usage and /v1/billing/invoices,
the tier fields of GET /v1/customers/me, and an operator's `asg customer tier`.

Charges need decisions, so the usage test runs its own stack with simulated agents whose
answers are fixed (`--always`): three agree on "cat", four others each answer something else.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from asg_grpc.devstack import Stack
from asg_grpc.domain.billing import Month
from asg_grpc.domain.customers import Registration, hash_token, key_hint, new_api_key
from asg_grpc.operator import set_customer_tier
from asg_grpc.store.sqlite import SQLiteStore
from tests.conftest import make_stack, register
from tests.store.contract.test_billing import decide, spec, submit

ASG = str(Path(sys.executable).with_name("asg"))
DONE = ("verified", "settled", "failed")


def this_month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


def client_for(stack: Stack) -> httpx.Client:
    key = register(stack.base_url)["api_key"]
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)


def task(task_type: str, n: int, options: list[str], threshold: int) -> dict[str, Any]:
    return {
        "type": task_type,
        "data_url": f"https://cdn.example.com/billing/{n}.jpg",
        "label_spec": {"question": "Which?", "options": options},
        "consensus_threshold": threshold,
    }


def wait_decided(http: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Polls the result until it is decided (a completion deadline, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = http.get(f"/v1/tasks/{task_id}/result")
        if reply.status_code == 200:
            body: dict[str, Any] = reply.json()
            assert body["status"] in DONE
            return body
        assert reply.status_code == 202, reply.text
        time.sleep(0.1)
    pytest.fail(f"{task_id} was not decided within {timeout:.0f}s")


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, httpx.Client, dict[str, str]]]:
    """A stack whose agents decided: 2 image tasks (3 labels), 1 sentiment task (2 labels),
    1 moderation task that failed (four different answers: no consensus)."""
    with make_stack(tmp_path_factory.mktemp("billing")) as stack, client_for(stack) as http:
        answers = ["cat", "cat", "cat", "dog", "bird", "fish", "emu"]
        for i, (token, answer) in enumerate(zip(stack.dev_workers(len(answers)), answers, strict=True)):
            stack.spawn(
                f"agent-{i}",
                ["asg-worker", "--server", stack.grpc_addr, "--labeler", "simulated", "--always", answer],
                env={"ASG_WORKER_TOKEN": token},
            )
        bodies = {
            "img1": task("image_classification", 1, ["cat", "other"], 3),
            "img2": task("image_classification", 2, ["cat", "other"], 3),
            "snt": task("sentiment", 3, ["cat", "other"], 2),
            "mod": task("moderation", 4, ["dog", "bird", "fish", "emu"], 2),
        }
        ids = {}
        for name, body in bodies.items():
            reply = http.post("/v1/tasks", json=body)
            assert reply.status_code == 202, reply.text
            ids[name] = reply.json()["task_id"]
        results = {name: wait_decided(http, task_id) for name, task_id in ids.items()}
        assert [results[n]["status"] for n in ("img1", "img2", "snt")] == ["verified"] * 3
        assert results["mod"]["status"] == "failed" and results["mod"]["worker_count"] == 4
        yield stack, http, ids


# --- usage ---------------------------------------------------------------------------------


def test_usage_counts_and_charges_decided_tasks_by_type(labeled: tuple[Stack, httpx.Client, dict]) -> None:
    _, http, _ = labeled

    reply = http.get("/v1/billing/usage", params={"month": this_month()})

    assert reply.status_code == 200, reply.text
    usage = reply.json()
    assert usage["month"] == this_month()
    assert usage["tier"] == "sandbox"
    assert usage["prices"] == {"label_price_sats": 300, "task_price_sats": 100}
    assert usage["by_type"] == {
        "image_classification": {
            "tasks_submitted": 2, "tasks_charged": 2, "tasks_failed": 0,
            "labels_collected": 6, "sats_charged": 2000,
        },
        "sentiment": {
            "tasks_submitted": 1, "tasks_charged": 1, "tasks_failed": 0,
            "labels_collected": 2, "sats_charged": 700,
        },
        # Four labels were collected, but a failed task is not charged (docs/billing.md).
        "moderation": {
            "tasks_submitted": 1, "tasks_charged": 0, "tasks_failed": 1,
            "labels_collected": 0, "sats_charged": 0,
        },
    }  # fmt: skip
    assert (usage["tasks_submitted"], usage["tasks_charged"], usage["tasks_failed"]) == (4, 3, 1)
    assert (usage["labels_collected"], usage["sats_charged"]) == (8, 2700)


def test_usage_defaults_to_the_current_utc_month(labeled: tuple[Stack, httpx.Client, dict]) -> None:
    _, http, _ = labeled

    usage = http.get("/v1/billing/usage").json()

    assert usage["month"] == this_month()
    assert usage["sats_charged"] == 2700
    assert usage["period_start"] == f"{this_month()}-01T00:00:00Z"


def test_an_earlier_month_has_no_usage(labeled: tuple[Stack, httpx.Client, dict]) -> None:
    _, http, _ = labeled

    usage = http.get("/v1/billing/usage", params={"month": "2020-01"}).json()

    assert usage["by_type"] == {}
    assert (usage["tasks_submitted"], usage["sats_charged"]) == (0, 0)


def test_invoices_list_the_current_month_as_a_draft_with_line_items(
    labeled: tuple[Stack, httpx.Client, dict],
) -> None:
    _, http, _ = labeled

    reply = http.get("/v1/billing/invoices")

    assert reply.status_code == 200, reply.text
    [invoice] = reply.json()["invoices"]
    assert invoice["month"] == this_month()
    assert invoice["status"] == "draft"
    assert invoice["invoice_id"] == "inv_" + this_month().replace("-", "")
    assert invoice["line_items"] == [
        {"task_type": "image_classification", "tasks": 2, "labels": 6, "sats": 2000},
        {"task_type": "sentiment", "tasks": 1, "labels": 2, "sats": 700},
    ]
    assert (invoice["total_tasks"], invoice["total_labels"], invoice["total_sats"]) == (3, 8, 2700)


def test_another_customer_sees_none_of_it(labeled: tuple[Stack, httpx.Client, dict]) -> None:
    stack, _, _ = labeled
    with client_for(stack) as other:
        usage = other.get("/v1/billing/usage").json()
        [invoice] = other.get("/v1/billing/invoices").json()["invoices"]

    assert (usage["tasks_submitted"], usage["sats_charged"], usage["by_type"]) == (0, 0, {})
    assert (invoice["status"], invoice["line_items"], invoice["total_sats"]) == ("draft", [], 0)


@pytest.mark.parametrize("month", ["2026-13", "26-04", "abc", "2026-00", "2026-4"])
def test_a_bad_month_is_a_400_naming_month(http: httpx.Client, auth: dict[str, str], month: str) -> None:
    reply = http.get("/v1/billing/usage", params={"month": month}, headers=auth)

    assert reply.status_code == 400
    assert reply.json()["error"].startswith("month ")


@pytest.mark.parametrize("path", ["/v1/billing/usage", "/v1/billing/invoices"])
def test_billing_needs_an_api_key(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 401
    assert http.get(path, headers={"Authorization": "Bearer sk_sandbox_nope"}).json() == {
        "error": "invalid api key"
    }


# --- the profile and tiers -----------------------------------------------------------------


def test_profile_shows_tier_quota_remaining_prices_and_rate_limit(http: httpx.Client, auth: dict) -> None:
    before = http.get("/v1/customers/me", headers=auth).json()
    submitted = http.post("/v1/tasks", json=task("sentiment", 9, ["a", "b"], 3), headers=auth)
    assert submitted.status_code == 202
    after = http.get("/v1/customers/me", headers=auth).json()

    assert (before["tier"], before["label_quota"], before["quota_remaining"]) == ("sandbox", 500, 500)
    assert after["quota_remaining"] == 497
    assert before["prices"] == {"label_price_sats": 300, "task_price_sats": 100}
    assert before["rate_limit"] == {"per_second": 10.0, "burst": 20, "enforced": False}


def run_tier(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ASG, "customer", "tier", *args, "--grpc", stack.grpc_addr, "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_operator_moves_a_customer_to_pro(stack: Stack, http: httpx.Client, customer: dict) -> None:
    auth = {"Authorization": f"Bearer {customer['api_key']}"}

    done = run_tier(stack, customer["customer_id"], "pro")

    assert done.returncode == 0, done.stderr
    assert "tier:        pro" in done.stdout
    me = http.get("/v1/customers/me", headers=auth).json()
    assert (me["tier"], me["label_quota"]) == ("pro", 10_000_000)
    assert me["prices"] == {"label_price_sats": 250, "task_price_sats": 50}
    assert (me["rate_limit"]["per_second"], me["rate_limit"]["burst"]) == (200.0, 400)
    assert http.get("/v1/billing/usage", headers=auth).json()["tier"] == "pro"


def test_an_unknown_tier_or_customer_is_refused(stack: Stack, customer: dict) -> None:
    bad_tier = run_tier(stack, customer["customer_id"], "platinum")
    bad_customer = run_tier(stack, "cust_nobody", "pro")

    assert bad_tier.returncode == 1
    assert "INVALID_ARGUMENT: tier must be one of pro, sandbox" in bad_tier.stderr
    assert bad_customer.returncode == 1
    assert "NOT_FOUND: customer not found" in bad_customer.stderr


def test_a_customer_key_cannot_change_a_tier(stack: Stack, customer: dict) -> None:
    with pytest.raises(grpc.RpcError) as info:
        set_customer_tier(stack.grpc_addr, customer["api_key"], customer["customer_id"], "pro")

    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


# --- a past month: an issued invoice ---------------------------------------------------------


def test_a_past_month_is_an_issued_invoice_and_stays_the_same(tmp_path: Path) -> None:
    # The store is written before the stack starts, with tasks submitted and decided last month
    # (the API cannot travel in time).
    current = Month.of(time.time())
    last_month = current.start - 5 * 86400
    api_key = new_api_key()
    store = SQLiteStore(tmp_path / "data" / "asg.sqlite3")
    try:
        cid = store.create_customer(
            Registration("Past", "past@example.com"),
            tier="sandbox",
            label_quota=500,
            key_hash=hash_token(api_key),
            key_hint=key_hint(api_key),
            now=last_month,
        ).customer_id
        img, snt = submit(
            store, cid, [spec("image_classification", 3, 1), spec("sentiment", 2, 2)], last_month
        )
        decide(store, {img: ["a", "a", "b"], snt: ["c", "d", "c", "d"]}, last_month + 60)
    finally:
        store.close()

    with make_stack(tmp_path) as stack:
        headers = {"Authorization": f"Bearer {api_key}"}
        first = httpx.get(f"{stack.base_url}/v1/billing/invoices", headers=headers, timeout=10).json()
        again = httpx.get(f"{stack.base_url}/v1/billing/invoices", headers=headers, timeout=10).json()
        usage = httpx.get(
            f"{stack.base_url}/v1/billing/usage", params={"month": str(Month.of(last_month))}, headers=headers
        ).json()

    draft, issued = first["invoices"]
    assert (draft["month"], draft["status"], draft["line_items"]) == (str(current), "draft", [])
    assert (issued["month"], issued["status"]) == (str(Month.of(last_month)), "issued")
    assert issued["line_items"] == [
        {"task_type": "image_classification", "tasks": 1, "labels": 3, "sats": 1000}
    ]
    assert again == first
    assert usage["by_type"]["sentiment"] == {
        "tasks_submitted": 1, "tasks_charged": 0, "tasks_failed": 1, "labels_collected": 0, "sats_charged": 0,
    }  # fmt: skip
