"""`GET /dashboard/api/metrics` equals the scripted counts (seed 003; the definitions are in
docs/challenge.md, "Dashboard"): every challenge issued counts, the JSON 403 an API call gets
as much as a page (once per session while it has a challenge outstanding); passed / issued is
the solve rate, abandoned challenges unsolved; items are summed over the datasets there are;
sessions are the ones seen in the last hour. The counts survive a restart of the gateway (the
JSON 403s' too, counted in memory between writes)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.challenge.conftest import (
    GOLD,
    UNKNOWN,
    Gateway,
    Upstream,
    client,
    slots_of,
    solve,
    start_gateway,
    stop_gateway,
    text_dataset,
)

API = {"Accept": "application/json", "Sec-Fetch-Mode": "cors"}


def metrics(gw: Gateway) -> dict[str, object]:
    with gw.dash() as d:
        r = d.get("/metrics")
        assert r.status_code == 200, r.text
        out: dict[str, object] = r.json()
        return out


def test_metrics_count_every_challenge_issued_json_403s_included(tmp_path: Path, upstream: Upstream) -> None:
    gw = start_gateway(tmp_path, upstream.url)
    try:
        text_dataset(gw, [*GOLD, UNKNOWN])
        text_dataset(gw, GOLD, name="more controls")
        gw.config(risk_threshold=0.0)  # everyone is challenged

        with client(gw, "10.1.0.7", **API) as api:  # a script: three tries, one challenge
            for _ in range(3):
                r = api.get("/api/products")
                assert (r.status_code, r.json()) == (403, {"error": "challenge_required"})
        with client(gw, "10.2.0.7") as person:  # a page, solved
            assert solve(person, "/shop").status_code == 303
        with client(gw, "10.3.0.7") as wrong:  # a page answered wrong: a new page, left
            page = wrong.get("/shop")
            cid, slots = slots_of(page.text)
            time.sleep(0.7)
            bad = {f"a{i}": "dog" if t.startswith("gold-cat") else "cat" for i, (t, _) in enumerate(slots)}
            again = wrong.post("/.cg/answer", data={"challenge_id": cid, "redir": "/shop", **bad})
            assert again.status_code == 403 and "A quick check" in again.text
        with client(gw, "10.4.0.7") as left:  # a page never answered
            assert "A quick check" in left.get("/shop").text

        # the script's JSON 403 + 1 solved page + 2 pages of the wrong answerer + 1 abandoned page
        expected = {"total_challenges": 5, "total_items": 5, "solve_rate_pct": 20.0, "recent_sessions": 4}
        assert metrics(gw) == expected
        with gw.dash() as d:
            assert sum(ds["item_count"] for ds in d.get("/item-datasets").json()) == 5
    finally:
        stop_gateway(gw)

    gw = start_gateway(tmp_path, upstream.url)  # the same data dir
    try:
        # Sessions live in memory (docs/challenge.md): a restart forgets them, not the counts.
        assert metrics(gw) == {**expected, "recent_sessions": 0}
        with client(gw, "10.5.0.7", **API) as api:
            assert api.get("/api/products").status_code == 403
        assert metrics(gw)["total_challenges"] == 6
    finally:
        stop_gateway(gw)


def test_json_403s_count_once_per_session_per_challenge_ttl(tmp_path: Path, upstream: Upstream) -> None:
    """A flood from one session is one challenge until the TTL passes; each new session's first
    refusal is one more; a page under an outstanding JSON 403 is a new challenge (it has an id)."""
    gw = start_gateway(tmp_path, upstream.url, ASG_CHALLENGE_CHALLENGE_TTL="2")
    try:
        gw.config(risk_threshold=0.0)
        with httpx.Client(base_url=gw.url, headers={"X-Forwarded-For": "10.9.0.7", **API}) as bot:
            for _ in range(50):
                assert bot.get("/api/x").status_code == 403
            assert metrics(gw)["total_challenges"] == 1
            time.sleep(2.1)
            assert bot.get("/api/x").status_code == 403
            assert metrics(gw)["total_challenges"] == 2
        for ua in ("curl/8.5", "python-requests/2.32"):
            with httpx.Client(
                base_url=gw.url, headers={"X-Forwarded-For": "10.9.0.7", "User-Agent": ua}
            ) as c:
                assert c.get("/api/x").status_code == 403
        assert metrics(gw)["total_challenges"] == 4
        with client(gw, "10.8.0.7") as person:
            assert person.get("/favicon.ico", headers=API).status_code == 403
            assert "A quick check" in person.get("/shop").text
            assert person.get("/favicon.ico", headers=API).status_code == 403  # under its page
        assert metrics(gw)["total_challenges"] == 6
    finally:
        stop_gateway(gw)
