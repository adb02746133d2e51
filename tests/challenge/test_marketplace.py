"""Marketplace tasks labeled through the challenge gateway settle (issue 14, "Part of the
marketplace"): a real core and REST gateway (`make_stack`), the challenge gateway as a process
holding its own worker token, one simulated worker beside it, and httpx sessions that answer
like careful humans (controls right). The gateway's consensus is the label of its worker; the
task is decided, settled on the local ledger, and the gateway's worker is paid. With the core
down the gateway keeps serving; what it owes is delivered once the core is back."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_grpc.devstack import Stack
from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.operator import find_operator_token, register_worker
from asg_grpc.settings import Settings
from tests.challenge.conftest import (
    GOLD,
    PASSWORD,
    UNKNOWN,
    Gateway,
    Upstream,
    answers_for,
    client,
    slots_of,
    start_gateway,
    stop_gateway,
    text_dataset,
)
from tests.challenge.test_dashboard import run_cli
from tests.conftest import make_stack, register
from tests.e2e.test_labeling import wait_for

pytestmark = pytest.mark.slow

DATA_URL = "https://cdn.example.com/reviews/42.txt"
TASK = {
    "type": "text_classification",
    "data_url": DATA_URL,
    "label_spec": {"question": "Is this review about a cat or a dog?", "options": ["cat", "dog"]},
    "consensus_threshold": 2,
}


class Market:
    """The stack, the customer's client and the challenge gateway registered as a worker."""

    def __init__(self, stack: Stack, gw: Gateway, worker_id: str, http: httpx.Client) -> None:
        self.stack, self.gw, self.worker_id, self.http = stack, gw, worker_id, http
        self.other_id = ""  # opted_market: the other challenge-gateway worker
        self.restart: Callable[[], Gateway] | None = None  # market: the gateway again, same data dir

    def exported(self) -> list[dict[str, Any]]:
        """The labeled rows of the gateway's `marketplace: text_classification` dataset."""
        with self.gw.dash() as d:
            ds = next(
                x for x in d.get("/item-datasets").json() if x["name"] == "marketplace: text_classification"
            )
            rows: list[dict[str, Any]] = d.get(f"/item-datasets/{ds['id']}/labeled/export?fmt=json").json()
            return rows

    def restart_gateway(self) -> None:
        """SIGTERM, then the gateway again on its data dir (a new port)."""
        assert self.restart is not None
        stop_gateway(self.gw)
        self.gw = self.restart()

    def status(self) -> dict[str, Any]:
        with self.gw.dash() as d:
            r = d.get("/marketplace")
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

    def result(self, task_id: str) -> dict[str, Any] | None:
        """The decided result, or None while the task is still being labeled (202)."""
        r = self.http.get(f"/v1/tasks/{task_id}/result")
        assert r.status_code in (200, 202), r.text
        return r.json() if r.status_code == 200 else None


@pytest.fixture
def market(tmp_path: Path, upstream: Upstream, request: pytest.FixtureRequest) -> Iterator[Market]:
    """The gateway's extra environment from an indirect parametrize, if any."""
    extra: dict[str, str] = getattr(request, "param", {})
    with make_stack(tmp_path / "core", ASG_BLOCK_INTERVAL="0.2") as stack:
        operator = find_operator_token(Settings(data_dir=stack.data_dir))
        assert operator
        worker = register_worker(
            stack.grpc_addr, operator, "challenge-gateway", site_owner("site owner"), ["text_classification"]
        )
        # A second worker, so a task (consensus_threshold 2) needs the gateway's label too.
        stack.start_workers(1, "--always", "cat", "--task-types", "text_classification")
        (tmp_path / "gw").mkdir()
        env = {
            "ASG_CHALLENGE_CORE_ADDR": stack.grpc_addr,
            "ASG_CHALLENGE_WORKER_TOKEN": worker.token,
            **extra,
        }
        gw = start_gateway(tmp_path / "gw", upstream.url, **env)
        auth = {"Authorization": f"Bearer {register(stack.base_url)['api_key']}"}
        market = None
        try:
            with httpx.Client(base_url=stack.base_url, headers=auth, timeout=10) as http:
                text_dataset(gw, GOLD)  # the site owner's own controls
                gw.config(risk_threshold=0.0)
                market = Market(stack, gw, worker.worker_id, http)
                market.restart = lambda: start_gateway(tmp_path / "gw", upstream.url, **env)
                yield market
        finally:
            stop_gateway(market.gw if market else gw)


def site_owner(seed: str) -> str:
    return p2pkh_address(hashlib.sha256(seed.encode()).digest()[:20])


@pytest.fixture
def opted_market(tmp_path: Path, upstream: Upstream) -> Iterator[Market]:
    """docs/challenge.md, "Opting in one batch or task": the gateway registered as a challenge
    gateway and set to take opted-in work only (ASG_CHALLENGE_MARKET_TASKS=opted-in); a second
    challenge-gateway worker (another site's, here a simulated worker that says `cat`) so an
    opted-in task can reach its threshold of 2; and a plain simulated worker that says `cat` too."""
    with make_stack(tmp_path / "core", ASG_BLOCK_INTERVAL="0.2") as stack:
        operator = find_operator_token(Settings(data_dir=stack.data_dir))
        assert operator
        types = ["text_classification"]
        worker = register_worker(
            stack.grpc_addr, operator, "challenge-gateway", site_owner("site"), types, challenge_gateway=True
        )
        other = register_worker(
            stack.grpc_addr, operator, "other-site", site_owner("other"), types, challenge_gateway=True
        )
        simulated = ["asg-worker", "--server", stack.grpc_addr, "--labeler", "simulated", "--always", "cat"]
        stack.spawn("worker-other-site", simulated, env={"ASG_WORKER_TOKEN": other.token})
        stack.start_workers(1, "--always", "cat", "--task-types", "text_classification")
        (tmp_path / "gw").mkdir()
        gw = start_gateway(
            tmp_path / "gw",
            upstream.url,
            ASG_CHALLENGE_CORE_ADDR=stack.grpc_addr,
            ASG_CHALLENGE_WORKER_TOKEN=worker.token,
            ASG_CHALLENGE_MARKET_TASKS="opted-in",
        )
        auth = {"Authorization": f"Bearer {register(stack.base_url)['api_key']}"}
        try:
            with httpx.Client(base_url=stack.base_url, headers=auth, timeout=10) as http:
                text_dataset(gw, GOLD)
                gw.config(risk_threshold=0.0)
                market = Market(stack, gw, worker.worker_id, http)
                market.other_id = other.worker_id
                yield market
        finally:
            stop_gateway(gw)


@pytest.fixture
def lone_gateway(tmp_path: Path, upstream: Upstream) -> Iterator[Market]:
    """docs/labeling.md, "When no worker is left": the gateway is the only challenge-gateway
    worker (a plain simulated worker beside it), so an opted-in task of threshold 2 can never
    be decided. The core reads its roster every 0.5 s."""
    with make_stack(tmp_path / "core", ASG_BLOCK_INTERVAL="0.2", ASG_WORKER_ROSTER_SECONDS="0.5") as stack:
        operator = find_operator_token(Settings(data_dir=stack.data_dir))
        assert operator
        worker = register_worker(
            stack.grpc_addr, operator, "challenge-gateway", site_owner("site"), ["text_classification"],
            challenge_gateway=True,
        )  # fmt: skip
        stack.start_workers(1, "--always", "cat", "--task-types", "text_classification")
        (tmp_path / "gw").mkdir()
        gw = start_gateway(
            tmp_path / "gw", upstream.url, ASG_CHALLENGE_CORE_ADDR=stack.grpc_addr,
            ASG_CHALLENGE_WORKER_TOKEN=worker.token,
        )  # fmt: skip
        auth = {"Authorization": f"Bearer {register(stack.base_url)['api_key']}"}
        try:
            with httpx.Client(base_url=stack.base_url, headers=auth, timeout=10) as http:
                text_dataset(gw, GOLD)
                gw.config(risk_threshold=0.0)
                yield Market(stack, gw, worker.worker_id, http)
        finally:
            stop_gateway(gw)


def answer_as_human(gw: Gateway, net: str, option: str) -> httpx.Response:
    """A session from `net` that gets a challenge, gets the controls right and answers `option`
    for the marketplace item (shown with its task's data URL), then reaches the site."""
    with client(gw, net=net) as c:
        page = c.get("/shop")
        assert page.status_code == 200 and "A quick check" in page.text, page.text[:300]
        cid, slots = slots_of(page.text)
        assert DATA_URL in [text for text, _ in slots], slots
        named = [("mystery" if text == DATA_URL else text, options) for text, options in slots]
        time.sleep(0.7)
        answered = c.post(
            "/.cg/answer", data={"challenge_id": cid, "redir": "/shop", **answers_for(named, option)}
        )
        assert answered.status_code == 303, answered.text
        return c.get("/shop")


def submit(market: Market) -> str:
    r = market.http.post("/v1/tasks", json=TASK)
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    wait_for("the gateway to take the task", lambda: market.status()["labeling"] == 1)
    return task_id


def assert_settled_and_paid(market: Market, task_id: str) -> None:
    result = wait_for("the task to be decided", lambda: market.result(task_id))
    assert result["status"] in ("verified", "settled"), result
    assert result["consensus_label"] == "cat"
    assert market.worker_id in [label["worker_id"] for label in result["labels"]], result["labels"]

    def receipt() -> dict[str, Any] | None:
        r = market.http.get(f"/v1/tasks/{task_id}/receipt")
        return r.json() if r.status_code == 200 else None

    proof = wait_for("the task's receipt", receipt)
    assert len(proof["bsv_txid"]) == 64
    paid = [p for p in proof["payouts"] if p["worker_id"] == market.worker_id]
    assert paid and paid[0]["sats"] > 0, proof["payouts"]
    # The gateway's own stream hears of the payment and counts it.
    status = wait_for("the payment notice", lambda: (s := market.status())["sats_earned"] and s)
    assert status["sats_earned"] == paid[0]["sats"]
    assert status["delivered"] == 1 and status["owed"] == 0 and status["labeling"] == 0


def test_a_marketplace_task_labeled_through_the_gateway_settles_and_pays_it(market: Market) -> None:
    task_id = submit(market)
    assert market.status()["connected"] is True

    for net, option in (("10.1.0.7", "cat"), ("10.2.0.7", "dog"), ("10.3.0.7", "cat")):
        assert answer_as_human(market.gw, net, option).status_code == 200

    assert_settled_and_paid(market, task_id)
    # The mirrored item is in the gateway's own dataset with the 2:1 agreement it reported.
    rows = market.exported()
    assert [(r["external_id"], r["label"], r["votes"], round(r["agreement"], 2)) for r in rows] == [
        (task_id, "cat", 3, 0.67)
    ]


def test_an_opted_in_batch_goes_to_the_gateway_and_a_plain_task_does_not(opted_market: Market) -> None:
    market = opted_market
    plain = market.http.post("/v1/tasks", json={**TASK, "data_url": "https://cdn.example.com/plain.txt"})
    assert plain.status_code == 202, plain.text
    plain_id = plain.json()["task_id"]
    # The plain task is decided by the other two workers; the gateway never holds it.
    decided = wait_for("the plain task to be decided", lambda: market.result(plain_id))
    assert market.worker_id not in [label["worker_id"] for label in decided["labels"]]
    assert market.status()["labeling"] == 0

    batch = market.http.post("/v1/tasks/batch", json={"labor": "challenge", "tasks": [TASK]})
    assert batch.status_code == 202, batch.text
    [task_id] = batch.json()["task_ids"]
    assert market.http.get(f"/v1/tasks/{task_id}").json()["labor"] == "challenge"
    wait_for("the gateway to take the opted-in task", lambda: market.status()["labeling"] == 1)
    for net, option in (("10.1.0.7", "cat"), ("10.2.0.7", "dog"), ("10.3.0.7", "cat")):
        assert answer_as_human(market.gw, net, option).status_code == 200

    assert_settled_and_paid(market, task_id)
    # Only the two challenge gateways labeled it: the plain worker, quick as it is, was never offered it.
    result = market.result(task_id)
    assert result is not None
    assert sorted(label["worker_id"] for label in result["labels"]) == sorted(
        [market.worker_id, market.other_id]
    )
    rows = market.exported()
    assert [r["external_id"] for r in rows] == [task_id]


def test_with_the_core_down_the_label_is_queued_and_delivered_after_restart(market: Market) -> None:
    task_id = submit(market)
    own = text_dataset(market.gw, [UNKNOWN], name="the site's own")
    market.stack.kill("core")
    wait_for("the gateway to notice", lambda: market.status()["connected"] is False)

    # The site and its challenges go on, its own items labeled as before (each page shows both
    # unknowns); the marketplace item's consensus is kept as owed.
    for net, option in (("10.1.0.7", "cat"), ("10.2.0.7", "cat"), ("10.3.0.7", "dog")):
        assert answer_as_human(market.gw, net, option).status_code == 200
    assert market.status()["owed"] == 1
    with market.gw.dash() as d:
        rows = d.get(f"/item-datasets/{own}/labeled/export?fmt=json").json()
    assert [(r["label"], r["votes"]) for r in rows] == [("cat", 3)]

    market.stack.start_core()
    market.stack.wait_ready()
    wait_for("delivery after the restart", lambda: market.status()["delivered"] == 1)
    assert_settled_and_paid(market, task_id)


def assert_gone_back(market: Market, task_id: str) -> None:
    """Returned by the gateway (a Skip), no longer shown to its sessions, and, with the simulated
    worker's label alone left, closed by the core (no worker left who could label it)."""
    status = wait_for("the task to go back", lambda: (s := market.status())["returned"] == 1 and s)
    assert status["labeling"] == 0 and status["owed"] == 0 and status["delivered"] == 0
    with client(market.gw, net="10.99.0.7") as c:
        page = c.get("/shop")
        assert page.status_code == 200 and "A quick check" in page.text
        assert DATA_URL not in [text for text, _ in slots_of(page.text)[1]]
    result = wait_for("the core to close the task", lambda: market.result(task_id))
    assert result["status"] == "failed", result
    assert market.worker_id not in [label["worker_id"] for label in result["labels"]]


def test_a_disputed_item_goes_back(market: Market) -> None:
    """Ten counted votes without a label (the gateway's rule: docs/challenge.md, "Sessions,
    challenges, votes"): at consensus_threshold 0.9 ten sessions answering 5:5 never agree."""
    market.gw.config(consensus_threshold=0.9)
    task_id = submit(market)
    for i in range(10):
        assert answer_as_human(market.gw, f"10.{i + 1}.0.7", ("cat", "dog")[i % 2]).status_code == 200
    assert_gone_back(market, task_id)


@pytest.mark.parametrize("market", [{"ASG_CHALLENGE_MARKET_HOLD": "3"}], indirect=True)
def test_an_item_without_consensus_in_the_hold_time_goes_back(market: Market) -> None:
    task_id = submit(market)
    assert answer_as_human(market.gw, "10.1.0.7", "cat").status_code == 200  # one vote: no label
    assert_gone_back(market, task_id)


def test_a_gateway_restart_loses_neither_the_task_nor_its_votes(market: Market) -> None:
    """Its stream ends without a skip: the held task goes back to the pool and is offered to it
    again when it reconnects, with the vote cast before the restart still counted."""
    task_id = submit(market)
    assert answer_as_human(market.gw, "10.1.0.7", "cat").status_code == 200
    market.restart_gateway()
    wait_for("the task to come back", lambda: (s := market.status())["connected"] and s["labeling"] == 1)
    for net, option in (("10.2.0.7", "dog"), ("10.3.0.7", "cat")):
        assert answer_as_human(market.gw, net, option).status_code == 200
    assert_settled_and_paid(market, task_id)
    rows = market.exported()
    assert [(r["external_id"], r["votes"], round(r["agreement"], 2)) for r in rows] == [(task_id, 3, 0.67)]


def test_a_task_its_customer_cancels_goes_back_and_is_no_longer_shown(market: Market) -> None:
    task_id = submit(market)
    assert market.http.delete(f"/v1/tasks/{task_id}").status_code == 200

    status = wait_for("the task to come back", lambda: (s := market.status())["returned"] == 1 and s)
    assert status["labeling"] == 0 and status["owed"] == 0
    with client(market.gw, net="10.4.0.7") as c:
        page = c.get("/shop")
        assert page.status_code == 200 and "A quick check" in page.text
        assert DATA_URL not in [text for text, _ in slots_of(page.text)[1]]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ASG_CHALLENGE_CORE_ADDR": "127.0.0.1:50051"}, "go together"),
        ({"ASG_CHALLENGE_CORE_ADDR": "core", "ASG_CHALLENGE_WORKER_TOKEN": "wk_x"}, "HOST:PORT"),
        ({"ASG_CHALLENGE_CORE_ADDR": "127.0.0.1:1", "ASG_CHALLENGE_WORKER_TOKEN": "sk_x"}, "worker token"),
        (
            {"ASG_CHALLENGE_CORE_ADDR": "127.0.0.1:1", "ASG_CHALLENGE_WORKER_TOKEN": "wk_x",
             "ASG_CHALLENGE_TASK_TYPES": "audio"},
            "ASG_CHALLENGE_TASK_TYPES: unknown audio",
        ),
    ],
)  # fmt: skip
def test_bad_marketplace_settings_stop_the_start_naming_the_variable(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    out = run_cli(tmp_path, ASG_CHALLENGE_DASHBOARD_PASSWORD=PASSWORD, **env)
    assert out.returncode == 2 and says in out.stderr, out.stderr


def test_a_refused_token_turns_the_marketplace_off_and_the_site_stays_served(
    tmp_path: Path, upstream: Upstream
) -> None:
    with make_stack(tmp_path / "core") as stack:
        gw = start_gateway(
            tmp_path,
            upstream.url,
            ASG_CHALLENGE_CORE_ADDR=stack.grpc_addr,
            ASG_CHALLENGE_WORKER_TOKEN="wk_nope",
        )
        try:
            with gw.dash() as d:
                status = wait_for("the refusal", lambda: (r := d.get("/marketplace").json())["refused"] and r)
            assert status["connected"] is False and "UNAUTHENTICATED" in status["refused"]
            with client(gw) as c:
                assert c.get("/page").status_code == 200  # below the default threshold: proxied
        finally:
            stop_gateway(gw)


def test_an_opted_in_task_one_gateway_can_never_decide_fails_uncharged_and_leaves_the_gateway(
    lone_gateway: Market,
) -> None:
    """Before, it waited for ever (the plain worker of its type counted, though it can never
    label it). Now the core closes it as failed, says why, charges nothing, and the gateway,
    told `withdrawn`, stops showing it to its visitors."""
    market = lone_gateway
    r = market.http.post("/v1/tasks", json={**TASK, "labor": "challenge"})
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]

    result = wait_for("the core to close the task", lambda: market.result(task_id), timeout=20)
    assert (result["status"], result["failure_reason"], result["worker_count"]) == (
        "failed",
        "no_challenge_gateway",
        0,
    )
    status = wait_for("the task to go back", lambda: (s := market.status())["returned"] == 1 and s)
    assert status["labeling"] == 0 and status["owed"] == 0
    with client(market.gw, net="10.5.0.7") as c:
        page = c.get("/shop")
        assert page.status_code == 200 and "A quick check" in page.text
        assert DATA_URL not in [text for text, _ in slots_of(page.text)[1]]
    usage = market.http.get("/v1/billing/usage").json()
    assert (usage["tasks_charged"], usage["tasks_failed"], usage["sats_charged"]) == (0, 1, 0)
