"""Challenges and pass tokens over plain HTTP: a careful client passes and is not challenged again
until the TTL; replayed, tampered, transplanted and expired tokens or challenges are refused;
too-fast answers fail; a guessing bot is cooled down and its answers never reach an export."""

from __future__ import annotations

import time

import httpx

from tests.challenge.conftest import (
    GOLD,
    UNKNOWN,
    Gateway,
    Upstream,
    answers_for,
    client,
    slots_of,
    solve,
    text_dataset,
)


def test_pass_then_not_challenged_until_ttl(gateway: Gateway, upstream: Upstream) -> None:
    text_dataset(gateway, [*GOLD, UNKNOWN])
    gateway.config(risk_threshold=0.0, challenge_token_ttl=2)
    with client(gateway) as c:
        before = upstream.count()
        r = solve(c, "/account?tab=1")
        assert r.status_code == 303 and r.headers["location"] == "/account?tab=1"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cg_pass="))
        assert (
            "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Max-Age=2" in cookie
        )
        assert upstream.count() == before
        assert c.get("/account?tab=1").json()["path"] == "/account?tab=1"
        assert c.get("/other").status_code == 200
        assert upstream.count() == before + 2
        time.sleep(2.5)
        assert "A quick check" in c.get("/other").text


def test_replayed_challenge_and_too_fast_answers_are_refused(gateway: Gateway) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway) as c:
        page = c.get("/x")
        cid, slots = slots_of(page.text)
        fast = c.post("/.cg/answer", data={"challenge_id": cid, "redir": "/x", **answers_for(slots, "cat")})
        assert fast.status_code == 403 and "not right" in fast.text
        cid2, slots2 = slots_of(fast.text)
        time.sleep(0.7)
        form = {"challenge_id": cid2, "redir": "/x", **answers_for(slots2, "cat")}
        assert c.post("/.cg/answer", data=form).status_code == 303
        replay = c.post("/.cg/answer", data=form)
        assert replay.status_code == 403 and "expired or was already used" in replay.text


def test_challenge_of_another_session_is_refused(gateway: Gateway) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway, "10.1.0.7") as a, client(gateway, "10.9.0.7") as b:
        cid, slots = slots_of(a.get("/x").text)
        time.sleep(0.7)
        stolen = b.post("/.cg/answer", data={"challenge_id": cid, "redir": "/x", **answers_for(slots, "cat")})
        assert stolen.status_code == 403 and "cg_pass" not in stolen.headers.get("set-cookie", "")


def test_tampered_and_transplanted_tokens_are_rejected(gateway: Gateway, upstream: Upstream) -> None:
    text_dataset(gateway, GOLD)
    gateway.config(risk_threshold=0.0)
    with client(gateway) as c:
        assert solve(c, "/x").status_code == 303
        assert c.get("/x").status_code == 200
        jar = dict(c.cookies.items())
    before = upstream.count()
    token = jar["cg_pass"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for headers, net, cookies in (
        ({"User-Agent": "Mozilla/5.0 Firefox/140.0"}, "10.1.0.7", jar),  # other UA
        ({}, "10.77.0.7", jar),  # other network
        ({}, "10.1.0.7", {**jar, "cg_pass": tampered}),  # tampered
    ):
        with client(gateway, net, **headers) as other:
            other.cookies.update(cookies)
            r = other.get("/x")
            assert r.status_code == 200 and "A quick check" in r.text
    assert upstream.count() == before
    with client(gateway, "10.1.0.99") as same_net:  # roaming inside the /24 keeps the pass
        same_net.cookies.update(jar)
        assert same_net.get("/x").json()["path"] == "/x"


def test_guessing_bot_is_cooled_down_and_its_answers_never_exported(
    gateway: Gateway, upstream: Upstream
) -> None:
    ds = text_dataset(gateway, [*GOLD, UNKNOWN])
    before = upstream.count()
    with httpx.Client(base_url=gateway.url, timeout=10) as bot:
        statuses = []
        for _ in range(4):
            page = bot.get("/.cg/challenge?redir=/")
            if page.status_code == 429:
                statuses.append(429)
                break
            cid, slots = slots_of(page.text)
            time.sleep(0.7)
            wrong = {
                f"a{i}": ("dog" if t.startswith("gold-cat") else "cat") for i, (t, _) in enumerate(slots)
            }
            statuses.append(
                bot.post("/.cg/answer", data={"challenge_id": cid, "redir": "/", **wrong}).status_code
            )
        assert statuses[:2] == [403, 403] and 429 in statuses
        cooled = bot.get("/.cg/challenge?redir=/")
        assert cooled.status_code == 429 and int(cooled.headers["retry-after"]) >= 1
        assert bot.get("/").status_code == 403
    assert upstream.count() == before
    with gateway.dash() as d:
        assert d.get(f"/item-datasets/{ds}/labeled/export?fmt=json").json() == []
        m = d.get("/metrics").json()
        # 3 pages fetched + the 2 new pages that answered the first two failures; the third → 429
        assert m["total_challenges"] == 5 and m["solve_rate_pct"] == 0.0 and m["recent_sessions"] == 1


def test_two_to_one_over_http_labels_with_agreement_067(gateway: Gateway) -> None:
    ds = text_dataset(gateway, [*GOLD, UNKNOWN])
    gateway.config(risk_threshold=0.0)
    for net, vote in (("10.1.0.7", "cat"), ("10.2.0.7", "cat"), ("10.3.0.7", "dog")):
        with client(gateway, net) as c:
            assert solve(c, "/x", vote).status_code == 303
    # the mystery item is labeled now, so it is a control: answering it "dog" fails. A page
    # shows 2 of the 3 controls at random, so new sessions ask until one shows it.
    passed, shown = 3, False
    for lang in ("de", "fr", "it", "es", "nl", "pt", "sv", "da", "fi", "pl", "cs", "hu"):
        with client(gateway, "10.3.0.8", **{"Accept-Language": lang}) as late:
            page = late.get("/x")
            cid, slots = slots_of(page.text)
            shown = any(text.startswith("mystery") for text, _ in slots)
            time.sleep(0.7)
            form = {"challenge_id": cid, "redir": "/x", **answers_for(slots, "dog")}
            status = late.post("/.cg/answer", data=form).status_code
            assert status == (403 if shown else 303)
            passed += status == 303
            if shown:
                break
    assert shown
    with gateway.dash() as d:
        rows = d.get(f"/item-datasets/{ds}/labeled/export?fmt=json").json()
        assert [(r["label"], r["agreement"], r["votes"]) for r in rows] == [("cat", 0.67, 3)]
        csv_text = d.get(f"/item-datasets/{ds}/labeled/export?fmt=csv").text
        assert "'=cmd|" in csv_text  # the formula cell escaped
        issued = 3 + (passed - 3) + 2  # the late pages, and the new page after the failure
        assert d.get("/metrics").json()["solve_rate_pct"] == round(100.0 * passed / issued, 1)


def test_one_counted_vote_per_network(gateway: Gateway) -> None:
    ds = text_dataset(gateway, [*GOLD, UNKNOWN])
    gateway.config(risk_threshold=0.0)
    export = f"/item-datasets/{ds}/labeled/export?fmt=json"
    for net, lang, vote in (("10.1.0.7", "en", "cat"), ("10.1.0.8", "fr", "cat"), ("10.3.0.7", "en", "dog")):
        with client(gateway, net, **{"Accept-Language": lang}) as c:
            assert solve(c, "/x", vote).status_code == 303
    with gateway.dash() as d:
        assert d.get(export).json() == []  # 10.1.0.8 shares 10.1.0.7's /24: cat 1, dog 1
    with client(gateway, "10.4.0.7") as c:
        assert solve(c, "/x", "cat").status_code == 303
    with gateway.dash() as d:
        assert [(r["label"], r["votes"]) for r in d.get(export).json()] == [("cat", 3)]
