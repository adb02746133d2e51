"""Three people in three Chromium sessions (Playwright) answer an unknown item 2:1 and it is
labeled with agreement 0.67 in all three export formats; plain httpx as the bot never reaches
the upstream and none of its answers reach an export."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from tests.challenge.conftest import (
    GOLD,
    UNKNOWN,
    Gateway,
    Upstream,
    answers_for,
    slots_of,
    solve_in_browser,
    text_dataset,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def bot_attempts(gw: Gateway, net: str) -> list[int]:
    """A plain-httpx bot from `net`: an API call, then the page, then two answers: a guess
    ("dog" everywhere) and one that is right but comes back at machine speed."""
    codes = []
    with httpx.Client(base_url=gw.url, headers={"X-Forwarded-For": net}, timeout=10) as bot:
        api = bot.get("/shop/api/items")
        assert api.status_code == 403 and api.json() == {"error": "challenge_required"}
        page = bot.get("/shop", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "A quick check" in page.text
        cid, slots = slots_of(page.text)
        guess = bot.post("/.cg/answer", data={"challenge_id": cid, "redir": "/shop"} | {
            f"a{i}": "dog" for i in range(len(slots))
        })  # fmt: skip
        codes.append(guess.status_code)
        cid, slots = slots_of(guess.text)
        fast = bot.post(
            "/.cg/answer", data={"challenge_id": cid, "redir": "/shop", **answers_for(slots, "dog")}
        )
        codes.append(fast.status_code)
        assert not any(h.startswith("cg_pass=") for h in fast.headers.get_list("set-cookie"))
    return codes


def test_three_browsers_label_an_item_2_to_1_and_the_bot_never_counts(
    chromium: Any, gateway: Gateway, upstream: Upstream
) -> None:
    ds = text_dataset(gateway, [*GOLD, UNKNOWN])
    shop = upstream.count("/shop")
    # The bot first, at the default risk_threshold: its headers give it away.
    for net in ("10.9.0.1", "10.9.1.1", "10.9.2.1"):
        assert bot_attempts(gateway, net) == [403, 403]  # wrong, then too fast: new pages
    assert upstream.count("/shop") == shop

    # Everyone is challenged now; three people on three networks, two say cat, one dog.
    gateway.config(risk_threshold=0.0)
    for net, vote in (("10.1.0.7", "cat"), ("10.2.0.7", "cat"), ("10.3.0.7", "dog")):
        context = chromium.new_context(extra_http_headers={"X-Forwarded-For": net})
        page = context.new_page()
        landed = solve_in_browser(page, f"{gateway.url}/shop", vote)
        assert landed.status == 200 and json.loads(page.locator("body").inner_text())["path"] == "/shop"
        context.close()
    assert upstream.count("/shop") == shop + 3

    with gateway.dash() as d:
        export = f"/item-datasets/{ds}/labeled/export"
        as_json = d.get(export, params={"fmt": "json"})
        as_jsonl = d.get(export, params={"fmt": "jsonl"})
        as_csv = d.get(export, params={"fmt": "csv"})
        metrics = d.get("/metrics").json()
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows_json = as_json.json()
    rows_jsonl = [json.loads(line) for line in as_jsonl.text.splitlines() if line]
    rows_csv = list(csv.DictReader(io.StringIO(as_csv.text)))
    # The bots' six "dog" answers were kept uncounted: had they counted, dog would have won.
    for rows in (rows_json, rows_jsonl):
        assert [(r["label"], r["agreement"], r["votes"], r["dataset_id"]) for r in rows] == [
            ("cat", 0.67, 3, ds)
        ]
    assert [(r["label"], r["agreement"], r["votes"], r["dataset_id"]) for r in rows_csv] == [
        ("cat", "0.67", "3", ds)
    ]
    assert rows_csv[0]["external_id"].startswith("'=")  # the formula cell escaped
    assert rows_json[0]["item_id"] == rows_jsonl[0]["item_id"] == rows_csv[0]["item_id"]
    # 3 bots × (the JSON 403 of their API call + 3 pages: the first, and one after each refused
    # answer) + 3 browsers' pages (the favicon each fetches under its page is the same challenge)
    assert metrics["total_challenges"] == 15 and metrics["solve_rate_pct"] == 20.0
