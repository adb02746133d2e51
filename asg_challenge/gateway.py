"""The gateway's state and decisions, shared by the proxy, the challenge routes and the
dashboard: runtime config, cached rules and keys (reloaded on every dashboard write, so a
change applies to the next request), sessions, challenges and their answers.

Sessions live in memory (evicted after SESSION_TTL); everything that must survive a restart
(config, datasets, votes, labels, challenges, keys, rules, counters) is in the Store."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from asg_challenge import tokens
from asg_challenge.domain import Config, Rule, first_match, in_match_order, updated_config
from asg_challenge.errors import Forbidden, TooManyRequests
from asg_challenge.ml import Trainer, features, training_rows
from asg_challenge.settings import Settings
from asg_challenge.store import Store, private_file

log = logging.getLogger("asg_challenge")
SESSION_TTL = 3600.0  # idle seconds before a session is forgotten
RECENT = 3600.0  # recent_sessions counts sessions seen within this many seconds
FAIL_WINDOW, MAX_FAILS = 600.0, 3  # this many failed challenges in the window → 429 cooldown
MAX_CONTROLS, MAX_UNKNOWNS = 2, 2
MODEL_MIN_REQUESTS = 3  # a session's first requests are scored by the header heuristic
BUILTIN = (  # known-answer controls for when the key's datasets have none
    ("Which of these is a colour?", ("red", "table", "seven"), "red"),
    ("Which of these is a number?", ("seven", "chair", "blue"), "seven"),
    ("Which of these is an animal?", ("cat", "spoon", "green"), "cat"),
)


@dataclass
class Session:
    """What the gateway knows of one session: the bot-risk model's features and its outcome."""

    sid: str
    first_seen: float
    last_seen: float
    requests: int = 0
    times: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    html: int = 0
    non_get: int = 0
    errors_4xx: int = 0
    paths: set[str] = field(default_factory=set)
    header_score: float = 0.0  # the last request's heuristic risk (header signals)
    snapshots: list[list[float]] = field(default_factory=list)  # features at SNAPSHOT_AT requests
    header_count: int = 0
    has_lang: bool = False
    automation_ua: bool = False
    cookie_back: bool = False
    challenged: int = 0
    challenged_at: float = 0.0  # when it was last issued a challenge (page or JSON 403)
    solved: int = 0
    failed: int = 0
    fast_answers: int = 0
    answer_times: list[float] = field(default_factory=list)
    fail_times: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    risk: float = 0.0

    def recent(self, now: float, window: float) -> int:
        """Requests within `window` seconds before `now` (times are in arrival order)."""
        return len(self.times) - bisect.bisect_left(self.times, now - window)

    @property
    def outcome(self) -> int | None:
        """The training label: 0 = passed a control, 1 = failed controls or answered too fast."""
        if self.failed >= 2 or self.fast_answers:
            return 1
        if self.solved:
            return 0
        return None


@dataclass(frozen=True)
class Outcome:
    """The result of an answer POST."""

    kind: str  # passed | failed | invalid | cooldown
    redir: str = "/"
    cid: str = ""
    retry_after: int = 0


class Gateway:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.secret = self._secret()
        known = {f.name for f in dataclasses.fields(Config)}
        # The log level of the settings until the dashboard sets one (then the stored one wins).
        stored = {k: v for k, v in store.load_config().items() if k in known}
        self.config = Config(**{"log_level": settings.log_level, **stored})
        self.sessions: dict[str, Session] = {}
        self.pass_uses: dict[str, int] = {}
        self.rules: list[Rule] = []
        self.keys_by_hash: dict[str, dict[str, Any]] = {}
        self.trainer = Trainer(settings.data_dir)
        self.reload_rules()
        self.reload_keys()

    def _secret(self) -> bytes:
        if self.settings.secret:
            return self.settings.secret.encode()
        path = self.settings.data_dir / "secret.key"
        if not path.exists() or path.stat().st_size < 32:
            private_file(path).write_text(secrets.token_hex(32))
        return path.read_text().strip().encode()

    # --- config, rules, keys -----------------------------------------------------------

    def update_config(self, patch: dict[str, Any]) -> Config:
        new = updated_config(self.config, patch)  # raises before anything is stored
        self.store.save_config(new.as_dict())
        self.config = new
        logging.getLogger().setLevel(new.log_level)
        return new

    def reload_rules(self) -> None:
        fields = ("id", "seq", "pattern", "match_type", "priority", "enabled", "action")
        self.rules = in_match_order([Rule(*(r[f] for f in fields)) for r in self.store.rules()])

    def reload_keys(self) -> None:
        self.keys_by_hash = {k["key_hash"]: k for k in self.store.api_keys()}

    def rule_for(self, path: str) -> Rule | None:
        return first_match(self.rules, path)

    def key_for(self, raw: str | None) -> dict[str, Any] | None:
        """The live API key an `X-Gateway-Key` names (None when the header is absent); an
        unknown or revoked one is refused at once."""
        if raw is None:
            return None
        key = self.keys_by_hash.get(hashlib.sha256(raw.encode()).hexdigest())
        if key is None or key["revoked_at"] is not None:
            raise Forbidden("unknown or revoked gateway key")
        return key

    @staticmethod
    def in_sample(sid: str, key: dict[str, Any] | None) -> bool:
        """Sticky per session: in when hash(sid) falls under the key's sample_rate."""
        rate = 1.0 if key is None else float(key["sample_rate"])
        return rate >= 1.0 or _sample_point(sid) < rate

    # --- sessions ----------------------------------------------------------------------

    def session(self, sid: str, now: float) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            if len(self.sessions) > 50_000:
                self.evict(now)
            s = self.sessions[sid] = Session(sid, now, now)
        return s

    def evict(self, now: float) -> None:
        for sid in [sid for sid, s in self.sessions.items() if now - s.last_seen > SESSION_TTL]:
            del self.sessions[sid]

    def recent_sessions(self) -> int:
        now = time.time()
        return sum(1 for s in self.sessions.values() if now - s.last_seen <= RECENT)

    # --- risk and the model ------------------------------------------------------------

    def score(self, s: Session) -> float:
        """The session's risk: the trained model once there is one and the session has
        MODEL_MIN_REQUESTS requests (its timing features mean nothing before), else the header
        heuristic."""
        model = self.trainer.model
        use_model = model is not None and s.requests >= MODEL_MIN_REQUESTS
        s.risk = model.risk(features(s)) if model is not None and use_model else s.header_score
        return s.risk

    def ml_status(self) -> dict[str, Any]:
        return self.trainer.status(sum(1 for s in self.sessions.values() if s.requests))

    def start_training(self) -> bool:
        snapshot = [
            (row, y)
            for s in list(self.sessions.values())
            if (y := s.outcome) is not None
            for row in training_rows(s)
        ]
        return self.trainer.start(snapshot)

    # --- pass tokens -------------------------------------------------------------------

    def pass_ok(self, token: str | None, *, sid: str, key_id: str, host: str, ua: str, net: str) -> bool:
        """A genuine, bound, unexpired token with requests left in its budget (counts one)."""
        if not token:
            return False
        payload = tokens.verify_pass(self.secret, token, sid=sid, key_id=key_id, host=host, ua=ua, net=net)
        if payload is None:
            return False
        cid = str(payload["cid"])
        used = self.pass_uses.get(cid, 0) + 1
        self.pass_uses[cid] = used
        if len(self.pass_uses) > 100_000:
            self.pass_uses.clear()  # tokens are short-lived; a reset only lengthens budgets once
        return used <= self.settings.pass_budget

    # --- challenges --------------------------------------------------------------------

    def cooldown(self, s: Session, now: float) -> int:
        """Seconds left of a session's cooldown after too many failed challenges, else 0."""
        fails = [t for t in s.fail_times if now - t <= FAIL_WINDOW]
        if len(fails) >= MAX_FAILS:
            return int(FAIL_WINDOW - (now - fails[-MAX_FAILS])) + 1
        return 0

    def issue(self, s: Session, key: dict[str, Any] | None, redir: str) -> tuple[str, list[dict[str, Any]]]:
        """A new challenge for session `s`: 1-2 controls and up to 2 unknowns from the key's
        datasets (a built-in control when they have none), shuffled, gold kept server-side."""
        now = time.time()
        wait = self.cooldown(s, now)
        if wait:
            raise TooManyRequests(f"too many failed challenges: retry after {wait} s", wait)
        datasets = key["datasets"] if key and key["datasets"] else None
        slots: list[dict[str, Any]] = []
        for it in self.store.pick_items(datasets, control=True, n=MAX_CONTROLS, sid=s.sid):
            slots.append(_slot(it, control=True))
        if not slots:
            q, opts, answer = random.choice(BUILTIN)
            slots.append({"item_id": None, "question": q, "text": None, "media": False,
                          "options": random.sample(opts, len(opts)), "gold": answer})  # fmt: skip
        for it in self.store.pick_items(datasets, control=False, n=MAX_UNKNOWNS, sid=s.sid):
            slots.append(_slot(it, control=False))
        random.shuffle(slots)
        cid = self.store.create_challenge(s.sid, key["id"] if key else "", slots, redir)
        s.challenged += 1
        s.challenged_at = now
        return cid, slots

    def refuse_api_call(self, s: Session) -> None:
        """An API call answered with the JSON 403 is a challenge issued, unless the session has
        one outstanding (issued within the challenge TTL): a script's retries, or the favicon a
        browser fetches under its challenge page, are the same challenge, not new ones."""
        now = time.time()
        if now - s.challenged_at > self.settings.challenge_ttl:
            s.challenged_at = now
            self.store.bump_soon("challenges_issued")

    def answer(self, cid: str, answers: dict[int, str], *, s: Session, net: str, key_id: str) -> Outcome:
        """Check an answer POST. A challenge counts once: spent, expired, another session's or
        answered faster than a human could → refused; the reply never says which item was wrong."""
        now = time.time()
        ch = self.store.challenge(cid) if cid else None
        if ch is None:
            return Outcome("invalid")
        valid = [
            not ch["spent"],
            now - ch["issued_at"] <= self.settings.challenge_ttl,
            hmac.compare_digest(ch["sid"], s.sid),
            hmac.compare_digest(ch["key_id"], key_id),
        ]
        if not all(valid):
            return Outcome("invalid", redir=ch["redir"])
        too_fast = now - ch["issued_at"] < self.settings.min_dwell
        correct = [
            answers.get(i) == slot["gold"] for i, slot in enumerate(ch["slots"]) if slot["gold"] is not None
        ]
        passed = all(correct) and bool(correct) and not too_fast
        if not self.store.spend_challenge(cid, passed):
            return Outcome("invalid", redir=ch["redir"])  # a concurrent replay won
        s.answer_times.append(now - ch["issued_at"])
        votes = [
            (slot["item_id"], answers[i])
            for i, slot in enumerate(ch["slots"])
            if slot["gold"] is None and slot["item_id"] and answers.get(i) in slot["options"]
        ]
        self.store.record_votes(
            votes,
            sid=s.sid,
            net=net,
            key_id=key_id,
            counted=passed,
            threshold=self.config.consensus_threshold,
        )
        if passed:
            s.solved += 1
            return Outcome("passed", redir=ch["redir"], cid=cid)
        s.failed += 1
        s.fast_answers += int(too_fast)
        s.fail_times.append(now)
        wait = self.cooldown(s, now)
        if wait:
            return Outcome("cooldown", redir=ch["redir"], retry_after=wait)
        return Outcome("failed", redir=ch["redir"])

    def metrics(self) -> dict[str, Any]:
        issued = self.store.counter("challenges_issued")
        passed = self.store.counter("challenges_passed")
        return {
            "total_challenges": issued,
            "total_items": self.store.total_items(),
            "solve_rate_pct": round(100.0 * passed / issued, 1) if issued else 0.0,
            "recent_sessions": self.recent_sessions(),
        }


@functools.lru_cache(maxsize=8192)
def _sample_point(sid: str) -> float:
    """Where a session falls in [0, 1) for sampling: a hash, so sticky per session."""
    return int.from_bytes(hashlib.sha256(sid.encode()).digest()[:8], "big") / 2**64


def _slot(item: dict[str, Any], *, control: bool) -> dict[str, Any]:
    opts = list(item["options"])
    return {
        "item_id": item["id"],
        "question": item["question"],
        "text": item["text"],
        "media": item["media_type"] is not None,
        "options": random.sample(opts, len(opts)),
        "gold": item["gold"] if control else None,
    }
