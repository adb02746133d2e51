"""The issue's list, the cases no other file covers: an expired challenge is refused; a pass
cookie dies with its revoked API key at once; deleting a dataset voids the open challenges
that show its items."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.challenge.conftest import (
    GOLD,
    Gateway,
    Upstream,
    answers_for,
    client,
    slots_of,
    solve,
    start_gateway,
    stop_gateway,
    text_dataset,
)


@pytest.fixture
def short_challenges(tmp_path: Path, upstream: Upstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path, upstream.url, ASG_CHALLENGE_CHALLENGE_TTL="1")
    yield gw
    stop_gateway(gw)


def test_an_expired_challenge_is_refused_and_replaced(short_challenges: Gateway, upstream: Upstream) -> None:
    text_dataset(short_challenges, GOLD)
    short_challenges.config(risk_threshold=0.0)
    with client(short_challenges) as c:
        cid, slots = slots_of(c.get("/late").text)
        time.sleep(1.5)  # right answers, after ASG_CHALLENGE_CHALLENGE_TTL
        form = {"challenge_id": cid, "redir": "/late", **answers_for(slots, "cat")}
        late = c.post("/.cg/answer", data=form)
        assert late.status_code == 403 and "expired or was already used" in late.text
        assert not any(h.startswith("cg_pass=") for h in late.headers.get_list("set-cookie"))
        fresh, _ = slots_of(late.text)
        assert fresh != cid  # a new challenge to answer in time
    assert upstream.count("/late") == 0


def test_a_pass_dies_with_its_revoked_key_at_once(gateway: Gateway, upstream: Upstream) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with gateway.dash() as d:
        key = d.post("/apikeys", json={"label": "site", "datasets": [], "sample_rate": 1.0}).json()
    with client(gateway, **{"X-Gateway-Key": key["raw_key"]}) as c:
        assert solve(c, "/member").status_code == 303
        assert c.get("/member").json()["path"] == "/member"  # the pass works under its key
        with gateway.dash() as d:
            assert d.delete(f"/apikeys/{key['id']}").status_code == 204
        before = upstream.count("/member")
        r = c.get("/member")
        assert r.status_code == 403 and r.json() == {"error": "unknown or revoked gateway key"}
        assert upstream.count("/member") == before


def test_deleting_a_dataset_voids_its_open_challenges(gateway: Gateway) -> None:
    ds = text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway) as c:
        cid, slots = slots_of(c.get("/x").text)
        with gateway.dash() as d:
            assert d.delete(f"/item-datasets/{ds}").status_code == 204
        time.sleep(0.7)
        r = c.post("/.cg/answer", data={"challenge_id": cid, "redir": "/x", **answers_for(slots, "cat")})
        assert r.status_code == 403 and "A quick check" in r.text
        assert not any(h.startswith("cg_pass=") for h in r.headers.get_list("set-cookie"))
