"""The gateway's rules, pure (no I/O): runtime config and its validation, path normalisation,
proxy-rule matching, the heuristic risk score, consensus, CSV cell escaping.

Everything here is a function of its arguments so the proxy, the dashboard and the tests agree
on one definition of each rule (docs/challenge.md)."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import posixpath
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from asg_challenge.errors import BadRequest, InvalidField

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MATCH_TYPES = ("exact", "prefix", "regex")
RULE_ACTIONS = ("allow", "challenge")
MIN_VOTES = 3  # an item is labeled from its third counted vote on
DISPUTED_AFTER = 10  # votes without consensus after which an item is no longer served
RISK_FLOOR, RISK_CEIL = 1e-6, 1 - 1e-6  # so threshold 0.0 always challenges and 1.0 never does


@dataclass(frozen=True)
class Config:
    """The runtime config of seed 003 (`GET|POST /dashboard/api/config`)."""

    risk_threshold: float = 0.5
    consensus_threshold: float = 0.6
    proxy_timeout: float = 30.0
    challenge_token_ttl: int = 300
    log_level: str = "INFO"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidField(field, f"{field} must be a number")
    return float(value)


def updated_config(current: Config, patch: Mapping[str, Any]) -> Config:
    """`current` with the fields of `patch` applied, or InvalidField for the first bad one, in
    which case nothing is applied (the caller stores only the returned whole)."""
    known = {f.name for f in dataclasses.fields(Config)}
    changes: dict[str, Any] = {}
    for field, value in patch.items():
        if field not in known:
            raise InvalidField(field, f"{field} is not a config field (known: {', '.join(sorted(known))})")
        if field == "risk_threshold":
            v = _number(field, value)
            if not 0.0 <= v <= 1.0:
                raise InvalidField(field, "risk_threshold must be between 0.0 and 1.0")
            changes[field] = v
        elif field == "consensus_threshold":
            v = _number(field, value)
            if not 0.5 < v <= 1.0:
                raise InvalidField(field, "consensus_threshold must be above 0.5 and at most 1.0")
            changes[field] = v
        elif field == "proxy_timeout":
            v = _number(field, value)
            if not 0.0 < v <= 300.0:
                raise InvalidField(field, "proxy_timeout must be above 0 and at most 300 seconds")
            changes[field] = v
        elif field == "challenge_token_ttl":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidField(field, "challenge_token_ttl must be a whole number of seconds")
            if not 1 <= value <= 86400:
                raise InvalidField(field, "challenge_token_ttl must be between 1 and 86400 seconds")
            changes[field] = value
        elif field == "log_level":
            if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
                raise InvalidField(field, f"log_level must be one of {', '.join(LOG_LEVELS)}")
            changes[field] = value.upper()
    return dataclasses.replace(current, **changes)


# --- paths ---------------------------------------------------------------------------------

_SAFE = "/:@!$&'()*+,;=-._~"
_NOT_PLAIN = re.compile(rb"%|//|/\.|\\|\x00")  # a path with none of these is already normal


def normalise_path(raw_path: bytes) -> str:
    """The request target's path decoded once, dot-segments and repeated slashes collapsed.
    The same string is matched against rules and (re-encoded by `encode_path`) forwarded, so
    the two can never disagree. Absolute-form or authority-form targets are refused."""
    if not raw_path.startswith(b"/"):
        raise BadRequest("the request target must be a path starting with /")
    if not _NOT_PLAIN.search(raw_path):
        return raw_path.decode("latin-1")  # nothing to decode or collapse: already normal
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        text = raw_path.decode("latin-1")
    path = unquote(text, errors="strict") if "%" in text else text
    if "\x00" in path or "\\" in path:
        raise BadRequest("the request path may not contain NUL or backslash")
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    collapsed = posixpath.normpath(path)
    if collapsed.startswith("//"):
        collapsed = "/" + collapsed.lstrip("/")
    collapsed = re.sub("/{2,}", "/", collapsed)
    if trailing and collapsed != "/":
        collapsed += "/"
    return collapsed


@functools.lru_cache(maxsize=4096)
def encode_path(path: str) -> str:
    """The normalised path percent-encoded for the upstream request line (cached: a site's
    paths repeat)."""
    return quote(path, safe=_SAFE)


def is_reserved(path: str) -> bool:
    """The gateway's own routes: never proxied, and no proxy rule can match them."""
    return path in ("/dashboard", "/.cg") or path.startswith(("/dashboard/", "/.cg/"))


def safe_redirect(target: str | None) -> str:
    """A post-challenge redirect target: a same-origin relative path, else `/`."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(c in target for c in "\r\n\x00"):
        return "/"
    return target


# --- proxy rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    seq: int  # creation order, the tie-break between equal priorities
    pattern: str
    match_type: str
    priority: int
    enabled: bool
    action: str = "allow"

    def matches(self, path: str) -> bool:
        if self.match_type == "exact":
            return path == self.pattern
        if self.match_type == "prefix":
            return path.startswith(self.pattern)
        return re.search(self.pattern, path) is not None


def validate_rule(fields: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The checked rule fields of a POST (all but priority/enabled/action required) or PATCH."""
    known = {"pattern", "match_type", "priority", "enabled", "action"}
    for field in fields:
        if field not in known:
            raise InvalidField(field, f"{field} is not a proxy-rule field")
    out: dict[str, Any] = {}
    if not partial:
        for field in ("pattern", "match_type"):
            if field not in fields:
                raise InvalidField(field, f"{field} is required")
    if "match_type" in fields:
        if fields["match_type"] not in MATCH_TYPES:
            raise InvalidField("match_type", f"match_type must be one of {', '.join(MATCH_TYPES)}")
        out["match_type"] = fields["match_type"]
    if "pattern" in fields:
        p = fields["pattern"]
        if not isinstance(p, str) or not p or len(p) > 1000:
            raise InvalidField("pattern", "pattern must be a string of 1 to 1000 characters")
        out["pattern"] = p
    if "priority" in fields:
        v = fields["priority"]
        if isinstance(v, bool) or not isinstance(v, int) or not -1_000_000 <= v <= 1_000_000:
            raise InvalidField("priority", "priority must be a whole number between -1000000 and 1000000")
        out["priority"] = v
    if "enabled" in fields:
        if not isinstance(fields["enabled"], bool):
            raise InvalidField("enabled", "enabled must be true or false")
        out["enabled"] = fields["enabled"]
    if "action" in fields:
        if fields["action"] not in RULE_ACTIONS:
            raise InvalidField("action", f"action must be one of {', '.join(RULE_ACTIONS)}")
        out["action"] = fields["action"]
    return out


def check_rule_pattern(match_type: str, pattern: str) -> None:
    """A regex rule's pattern must compile (checked on POST and PATCH, never at match time)."""
    if match_type == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidField("pattern", f"pattern is not a valid regular expression: {exc}") from exc
    elif not pattern.startswith("/"):
        raise InvalidField("pattern", f"an {match_type} pattern must start with /")


def in_match_order(rules: Sequence[Rule]) -> list[Rule]:
    """The enabled rules in the order they are tried: highest priority first, then the oldest."""
    return sorted((r for r in rules if r.enabled), key=lambda r: (-r.priority, r.seq))


def first_match(ordered: Sequence[Rule], path: str) -> Rule | None:
    """The rule that decides `path`: the first of `ordered` (from `in_match_order`, sorted once
    per rule change, not per request) that matches."""
    for rule in ordered:
        if rule.matches(path):
            return rule
    return None


# --- clients and networks ------------------------------------------------------------------


def parse_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


@functools.lru_cache(maxsize=65536)
def is_trusted(ip: str, trusted: Networks) -> bool:
    """`ip` is in one of the trusted proxy networks (cached: parsing an address costs more
    than the rest of a request's decision)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


def client_ip(peer: str, xff: str | None, trusted: Networks) -> str:
    """The socket peer, or, when the peer is a trusted proxy, the rightmost X-Forwarded-For hop
    that is not itself trusted (what a client cannot forge by prepending hops)."""
    if not xff or not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in xff.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


@functools.lru_cache(maxsize=65536)
def network_of(ip: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) a client is in: what pass tokens and votes are bound to, so
    roaming inside one network keeps a pass while a farm of addresses in it counts once."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


# --- risk ----------------------------------------------------------------------------------

AUTOMATION_UA = re.compile(
    r"python-httpx|python-requests|python-urllib|aiohttp|curl/|wget/|go-http-client|libwww|scrapy|"
    r"okhttp|java/|httpclient|node-fetch|axios|bot\b|spider|crawler",
    re.IGNORECASE,
)


@dataclass
class RequestSignals:
    """What one request says about its client (the heuristic's input)."""

    user_agent: str
    accept: str
    accept_language: str
    accept_encoding: str
    sec_fetch_mode: str
    sec_ch_ua: str
    navigation: bool
    recent_requests: int  # this session's requests in the last 10 s


@functools.lru_cache(maxsize=4096)
def is_automation_ua(ua: str) -> bool:
    """No user agent, or one of a known HTTP library or crawler. Cached per UA string: the
    regex over a long browser UA costs tens of µs and a site sees few distinct UAs."""
    return not ua or AUTOMATION_UA.search(ua) is not None


def heuristic_risk(s: RequestSignals) -> float:
    """A logistic of weighted signals in (0, 1), higher = more bot-like, used until a model is
    trained (Anubis WEIGH rules, SearXNG's header checks). HeadlessChrome only adds weight."""
    w = -1.5
    ua = s.user_agent
    if not ua:
        w += 3.0
    elif is_automation_ua(ua):
        w += 3.5
    if not s.accept_language:
        w += 1.5
    if "gzip" not in s.accept_encoding and "br" not in s.accept_encoding:
        w += 1.0
    if s.navigation and s.sec_fetch_mode != "navigate":
        w += 0.8
    if "Chrome/" in ua and not s.sec_ch_ua:
        w += 1.0
    if "HeadlessChrome" in ua:
        w += 0.8
    if s.recent_requests > 30:
        w += 2.0
    if s.accept_language and s.sec_fetch_mode and ("gzip" in s.accept_encoding) and "Mozilla/" in ua:
        w -= 1.0  # the full browser header set
    return clip_risk(1.0 / (1.0 + math.exp(-w)))


def clip_risk(p: float) -> float:
    return min(max(p, RISK_FLOOR), RISK_CEIL)


# --- consensus -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Consensus:
    label: str | None
    agreement: float
    votes: int
    disputed: bool


def consensus(labels: Sequence[str], threshold: float, min_votes: int = MIN_VOTES) -> Consensus:
    """Labeled when at least `min_votes` counted votes and the top answer's share reaches
    `threshold`; a tie at the top is never a label; disputed after DISPUTED_AFTER without one."""
    n = len(labels)
    if n == 0:
        return Consensus(None, 0.0, 0, False)
    ranked = Counter(labels).most_common()
    top, count = ranked[0]
    share = count / n
    tie = len(ranked) > 1 and ranked[1][1] == count
    if n >= min_votes and share >= threshold and not tie:
        return Consensus(top, share, n, False)
    return Consensus(None, share, n, n >= DISPUTED_AFTER)


# --- exports -------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text
