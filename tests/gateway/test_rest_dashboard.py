"""The /v1/dashboard/* endpoints over a real stack, with data whose figures are known.

Three simulated workers with fixed answers make the outcomes exact: two always say "cat",
one always "dog". A cat/dog task at threshold 3 is decided "cat" with 2 of 3 agreeing; a
cat/bird task at threshold 2 gets the two cats (the dog worker skips it): perfect agreement;
a task offering neither is skipped by all and never decided.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register
from tests.e2e.test_labeling import wait_for

SPLIT = 2  # cat/dog tasks: confidence 2/3
PERFECT = 3  # cat/bird tasks: confidence 1.0
STATUSES = ("pending", "in_progress", "verified", "settled", "failed", "cancelled", "expired")


def task(options: list[str], threshold: int, n: int = 0) -> dict[str, Any]:
    return {
        "type": "image_classification",
        "data_url": f"https://example.com/{'-'.join(options)}/{n}.jpg",
        "label_spec": {"question": "Animal?", "options": options},
        "consensus_threshold": threshold,
    }


@pytest.fixture(scope="module")
def dash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("dash")) as s:
        tokens = s.dev_workers(3)
        for i, (token, answer) in enumerate(zip(tokens, ("cat", "cat", "dog"), strict=True)):
            s.spawn(
                f"worker-{i}",
                ["asg-worker", "--server", s.grpc_addr, "--labeler", "simulated", "--always", answer],
                env={"ASG_WORKER_TOKEN": token},
            )
        yield s


class Customer:
    def __init__(self, base_url: str) -> None:
        self.key = register(base_url)["api_key"]
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base_url}/v1/dashboard/{path}", params=params, headers=self.headers)

    def ok(self, path: str, **params: Any) -> dict[str, Any]:
        reply = self.get(path, **params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def submit(self, body: dict[str, Any]) -> str:
        reply = httpx.post(f"{self.base_url}/v1/tasks", json=body, headers=self.headers)
        assert reply.status_code == 202, reply.text
        return reply.json()["task_id"]


@pytest.fixture(scope="module")
def labeled(dash_stack: Stack) -> Customer:
    """A customer whose decided tasks are all settled: SPLIT at 2/3, PERFECT at 1.0."""
    c = Customer(dash_stack.base_url)
    for n in range(SPLIT):
        c.submit(task(["cat", "dog"], 3, n))
    for n in range(PERFECT):
        c.submit(task(["cat", "bird"], 2, n))
    wait_for(
        "every decided task settled",
        lambda: c.ok("overview")["by_status"]["settled"] == SPLIT + PERFECT,
        timeout=90,
    )
    return c


@pytest.fixture(scope="module")
def listed(dash_stack: Stack) -> tuple[Customer, list[str]]:
    """A customer with 7 tasks nobody answers (closed `failed` once every worker skipped them,
    docs/labeling.md), the 3rd and 5th submitted then cancelled."""
    c = Customer(dash_stack.base_url)
    ids = [c.submit(task(["x", "y"], 2, n)) for n in range(7)]
    for task_id in (ids[2], ids[4]):
        assert httpx.delete(f"{c.base_url}/v1/tasks/{task_id}", headers=c.headers).status_code == 200
    return c, ids


def test_overview_counts_averages_and_days(labeled: Customer) -> None:
    body = labeled.ok("overview")
    assert set(body["by_status"]) == set(STATUSES)
    assert body["by_status"]["settled"] == SPLIT + PERFECT
    assert body["total"] == SPLIT + PERFECT
    assert body["avg_confidence"] == pytest.approx((SPLIT * 2 / 3 + PERFECT) / (SPLIT + PERFECT))
    assert 0 < body["avg_settlement_seconds"] < 90
    days = body["tasks_per_day"]
    assert len(days) == 30
    assert days[-1] == {"date": time.strftime("%Y-%m-%d", time.gmtime()), "count": SPLIT + PERFECT}
    assert sum(d["count"] for d in days[:-1]) == 0


def test_quality_agreement_histogram_and_labels(labeled: Customer) -> None:
    body = labeled.ok("quality")
    assert body["decided"] == SPLIT + PERFECT
    assert body["perfect_agreement"] == PERFECT
    assert body["perfect_agreement_rate"] == pytest.approx(PERFECT / (SPLIT + PERFECT))
    bins = body["confidence_histogram"]
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 0, SPLIT, 0, 0, PERFECT]
    assert bins[6]["min"] == pytest.approx(0.6) and bins[9]["max"] == pytest.approx(1.0)
    assert body["label_distribution"] == [{"label": "cat", "count": SPLIT + PERFECT}]


def test_task_rows_carry_consensus_and_txid(labeled: Customer) -> None:
    body = labeled.ok("tasks", status="settled")
    assert body["total"] == SPLIT + PERFECT and body["pages"] == 1
    for row in body["tasks"]:
        assert row["consensus_label"] == "cat"
        assert row["confidence"] in (pytest.approx(2 / 3), 1.0)
        assert len(row["bsv_txid"]) == 64
        assert row["task_type"] == "image_classification"


def test_empty_customer_has_zeros_and_one_empty_page(dash_stack: Stack) -> None:
    c = Customer(dash_stack.base_url)
    overview = c.ok("overview")
    assert overview["total"] == 0 and overview["avg_confidence"] is None
    assert overview["avg_settlement_seconds"] is None
    assert c.ok("tasks") == {"tasks": [], "page": 1, "per_page": 25, "total": 0, "pages": 1}
    quality = c.ok("quality")
    assert quality["decided"] == 0 and quality["perfect_agreement_rate"] is None
    assert quality["label_distribution"] == []


def test_paging_edges_both_sorts(listed: tuple[Customer, list[str]]) -> None:
    c, ids = listed
    newest = list(reversed(ids))
    pages = [c.ok("tasks", per_page=3, page=p) for p in (1, 2, 3)]
    assert [[t["task_id"] for t in p["tasks"]] for p in pages] == [newest[:3], newest[3:6], newest[6:]]
    assert {(p["total"], p["pages"]) for p in pages} == {(7, 3)}
    past = c.ok("tasks", per_page=3, page=4)
    assert past["tasks"] == [] and past["total"] == 7
    oldest = [c.ok("tasks", per_page=2, page=p, sort="created_at_asc") for p in (1, 2, 3, 4)]
    assert [t["task_id"] for p in oldest for t in p["tasks"]] == ids
    assert c.ok("tasks", per_page=100)["pages"] == 1


def test_status_filter(listed: tuple[Customer, list[str]]) -> None:
    c, ids = listed
    body = c.ok("tasks", status="cancelled")
    assert [t["task_id"] for t in body["tasks"]] == [ids[4], ids[2]]
    assert body["total"] == 2 and {t["status"] for t in body["tasks"]} == {"cancelled"}
    assert c.ok("tasks", status="expired")["total"] == 0
    assert c.ok("tasks", status="")["total"] == 7
    assert c.ok("overview")["by_status"]["cancelled"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"page": 2**40}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": 2.5}, "per_page"),
        ({"status": "done"}, "status"),
        ({"sort": "name"}, "sort"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    listed: tuple[Customer, list[str]], params: dict[str, Any], field: str
) -> None:
    reply = listed[0].get("tasks", **params)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(f"{field} ")


def test_another_customers_data_never_appears(
    labeled: Customer, listed: tuple[Customer, list[str]], dash_stack: Stack
) -> None:
    c, ids = listed
    assert {t["task_id"] for t in c.ok("tasks", per_page=100)["tasks"]} == set(ids)
    # Its own unanswered tasks may be closed `failed` (every worker skipped them), never decided
    # with a label: the other customer's cats are not in its quality panel.
    quality = c.ok("quality")
    assert quality["decided"] <= len(ids) - 2 and quality["label_distribution"] == []
    assert c.ok("overview")["by_status"]["settled"] == 0
    assert labeled.ok("overview")["by_status"]["cancelled"] == 0
    assert labeled.ok("usage")["key_hint"] != c.ok("usage")["key_hint"]


def test_usage_shows_tier_quota_hint_and_links(labeled: Customer) -> None:
    body = labeled.ok("usage")
    assert body["tier"] == "sandbox" and body["rate_limit_tier"] == "sandbox"
    assert body["label_quota"] == 500
    assert body["quota_remaining"] == 500 - (SPLIT * 3 + PERFECT * 2)
    assert body["key_hint"].startswith("sk_sand") and labeled.key not in str(body)
    assert body["usage"]["month"] == time.strftime("%Y-%m", time.gmtime())
    assert body["usage"]["tasks_submitted"] == SPLIT + PERFECT
    assert body["links"] == {"usage": "/v1/billing/usage", "invoices": "/v1/billing/invoices"}


@pytest.mark.parametrize("path", ["overview", "tasks", "quality", "usage"])
def test_every_endpoint_needs_a_key(dash_stack: Stack, path: str) -> None:
    reply = httpx.get(f"{dash_stack.base_url}/v1/dashboard/{path}", headers={"Authorization": "Bearer sk_x"})
    assert reply.status_code == 401
    assert reply.json() == {"error": "invalid api key"}


def test_dashboard_is_rate_limited_like_the_rest(tmp_path: Path) -> None:
    with make_stack(tmp_path, ASG_RATE_LIMIT="on") as s:
        key = register(s.base_url)["api_key"]
        with httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            codes = [http.get("/v1/dashboard/overview").status_code for _ in range(60)]
        assert 429 in codes
        assert codes[0] == 200
