"""The bot-risk model proven on traffic through the gateway process: human-like sessions (browser
headers, a cookie jar, human pauses, correct answers) and bot sessions (bursts, answers faster
than a human, some with plain httpx headers, some with a browser's) are challenged, their
outcomes become labels, POST /ml/train fits the model, and afterwards a new stealth bot (browser
headers, bot timing) that the header heuristic let through is stopped while a new human-like
session still passes. Nothing here scores in-process: every figure is the proxy's decision."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from functools import partial

import httpx

from tests.challenge.conftest import BROWSER_HEADERS, GOLD, Gateway, Upstream, client, solve, text_dataset

HUMANS, STEALTH_BOTS, PLAIN_BOTS = 14, 8, 6


def human(gw: Gateway, net: str, rng: random.Random) -> None:
    """Lands on a page, is challenged, reads, answers right, then browses with pauses."""
    with client(gw, net, **{"Accept-Language": rng.choice(["en-GB,en;q=0.9", "de-DE,de", "fr"])}) as c:
        time.sleep(rng.uniform(0.0, 0.5))
        assert solve(c, "/home").status_code == 303
        for i in range(rng.randint(2, 6)):
            time.sleep(reading_time(rng))
            assert c.get(f"/article/{rng.randint(1, 50)}?p={i}").status_code == 200


def reading_time(rng: random.Random) -> float:
    """Seconds a person spends on a page before the next click (kept short for the test)."""
    return rng.uniform(0.3, 1.0)


def bot(gw: Gateway, net: str, rng: random.Random, headers: dict[str, str]) -> None:
    """Fetches a burst of pages back to back, then answers a challenge at machine speed."""
    with httpx.Client(base_url=gw.url, headers={**headers, "X-Forwarded-For": net}, timeout=10) as c:
        page = None
        for i in range(rng.randint(4, 20)):
            page = c.get(f"/item/{i}")
        page = c.get("/.cg/challenge?redir=/")
        cid = page.text.split('name="challenge_id" value="', 1)[1].split('"', 1)[0]
        c.post("/.cg/answer", data={"challenge_id": cid, "redir": "/", "a0": "red", "a1": "cat"})


def run_all(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def wrap(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def burst(gw: Gateway, net: str, n: int) -> int:
    """A stealth bot: browser headers and cookie jar, `n` requests back to back; how many of them
    reached the upstream (got its JSON rather than a challenge)."""
    through = 0
    with client(gw, net) as c:
        for i in range(n):
            r = c.get(f"/item/{i}")
            through += r.headers.get("content-type", "").startswith("application/json")
    return through


def test_model_trained_on_challenge_outcomes_stops_a_stealth_bot_and_passes_a_human(
    gateway: Gateway, upstream: Upstream
) -> None:
    text_dataset(gateway, GOLD)
    assert burst(gateway, "10.97.0.7", 12) == 12  # the heuristic alone lets browser headers through

    gateway.config(risk_threshold=0.0)  # collect: everyone without a pass is challenged
    rng = random.Random(14)
    stealth = dict(BROWSER_HEADERS)
    plain = {"User-Agent": "python-httpx/0.28", "Accept": "*/*"}
    jobs: list[Callable[[], None]] = []
    for i in range(HUMANS):
        jobs.append(partial(human, gateway, f"10.50.{i}.7", random.Random(rng.random())))
    for i in range(STEALTH_BOTS):
        jobs.append(partial(bot, gateway, f"10.60.{i}.7", random.Random(rng.random()), stealth))
    for i in range(PLAIN_BOTS):
        jobs.append(partial(bot, gateway, f"10.70.{i}.7", random.Random(rng.random()), plain))
    run_all(jobs)

    with gateway.dash() as d:
        before = d.get("/ml/status").json()
        assert before["model_ready"] is False
        assert before["sessions_with_features"] >= HUMANS + STEALTH_BOTS + PLAIN_BOTS
        started = time.monotonic()
        r = d.post("/ml/train", json={})
        assert r.status_code == 200 and r.json() == {"status": "training_started"}
        assert time.monotonic() - started < 2.0  # returns at once; the fit runs in the background
        deadline = time.monotonic() + 30
        while not (status := d.get("/ml/status").json())["model_ready"]:
            assert time.monotonic() < deadline, "the model did not become ready in 30 s"
            time.sleep(0.2)
        assert status["last_trained"] and status["last_trained"].endswith("Z")
    assert (gateway.data_dir / "model.json").is_file()

    gateway.config(risk_threshold=0.5)  # the documented default
    hits = upstream.count("/item/")
    stopped = burst(gateway, "10.98.0.7", 12)
    assert stopped <= 3, f"{stopped} of 12 stealth-bot requests reached the upstream"
    assert upstream.count("/item/") - hits == stopped

    with client(gateway, "10.99.0.7") as person:  # a new human-like session, never challenged
        for i in range(6):
            r = person.get(f"/article/{i}")
            assert r.status_code == 200 and r.json()["path"] == f"/article/{i}", r.text[:200]
            time.sleep(reading_time(rng))
