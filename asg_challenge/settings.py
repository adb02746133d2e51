"""Process settings: each flag also from its ASG_CHALLENGE_* variable (a flag wins).

The upstream is fixed here and only here: no request can choose where it is proxied to. A
dashboard password is required (≥ 12 characters); without one the process refuses to start."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from asg_challenge.domain import LOG_LEVELS, parse_networks
from asg_common.config import secret

MIN_PASSWORD = 12
MIN_SECRET = 32


class SettingsError(Exception):
    """A setting that keeps the process from starting; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    listen_host: str
    listen_port: int
    upstream: str
    data_dir: Path
    dashboard_user: str
    dashboard_password: str | None = secret()
    secret: str | None = secret()  # HMAC key of pass tokens and session cookies; else a file
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    min_dwell: float = 0.6  # answers faster than this after the page was issued are refused
    pass_budget: int = 300  # requests one pass token carries before a new challenge
    explore: float = 0.02  # share of low-risk requests challenged anyway (unbiased model labels)
    challenge_ttl: int = 600  # seconds a challenge page can be answered
    log_level: str = "INFO"
    tls_cert: Path | None = None  # both set → the listener speaks https (cookies get `__Host-`)
    tls_key: Path | None = None
    market: MarketSettings | None = None  # set: the gateway is a worker of an ASG core


TASK_TYPES = ("image_classification", "text_classification", "sentiment", "moderation")


@dataclass(frozen=True)
class MarketSettings:
    """The gateway as one worker of the marketplace (docs/challenge.md, "Part of the marketplace")."""

    core_addr: str
    worker_token: str = secret()
    task_types: tuple[str, ...] = ()  # narrows the worker's registered types; empty keeps them
    max_in_flight: int = 16  # core tasks served as unknown items at once
    hold: float = 3600.0  # seconds a task may wait for consensus before it is returned
    # ASG_CHALLENGE_MARKET_TASKS=opted-in: only tasks whose customer chose `labor: challenge`.
    opted_in_only: bool = False


def market_settings(env: Mapping[str, str]) -> MarketSettings | None:
    """ASG_CHALLENGE_CORE_ADDR and ASG_CHALLENGE_WORKER_TOKEN together, or neither (no marketplace)."""
    addr = env.get("ASG_CHALLENGE_CORE_ADDR", "").strip()
    token = env.get("ASG_CHALLENGE_WORKER_TOKEN", "").strip()
    if not addr and not token:
        return None
    if not addr or not token:
        raise SettingsError("ASG_CHALLENGE_CORE_ADDR and ASG_CHALLENGE_WORKER_TOKEN go together")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"ASG_CHALLENGE_CORE_ADDR must be HOST:PORT, not {addr!r}")
    if not token.startswith("wk_"):
        raise SettingsError("ASG_CHALLENGE_WORKER_TOKEN must be a worker token (wk_…)")
    types = tuple(t.strip() for t in env.get("ASG_CHALLENGE_TASK_TYPES", "").split(",") if t.strip())
    bad = [t for t in types if t not in TASK_TYPES]
    if bad:
        raise SettingsError(
            f"ASG_CHALLENGE_TASK_TYPES: unknown {', '.join(bad)}; known: {', '.join(TASK_TYPES)}"
        )
    try:
        in_flight = int(env.get("ASG_CHALLENGE_MARKET_IN_FLIGHT", "16"))
        hold = float(env.get("ASG_CHALLENGE_MARKET_HOLD", "3600"))
    except ValueError as exc:
        raise SettingsError(f"ASG_CHALLENGE_MARKET_IN_FLIGHT / ASG_CHALLENGE_MARKET_HOLD: {exc}") from exc
    if not 1 <= in_flight <= 256:
        raise SettingsError("ASG_CHALLENGE_MARKET_IN_FLIGHT must be 1..256")
    if hold <= 0:
        raise SettingsError("ASG_CHALLENGE_MARKET_HOLD must be positive (seconds)")
    tasks = env.get("ASG_CHALLENGE_MARKET_TASKS", "all").strip() or "all"
    if tasks not in ("all", "opted-in"):
        raise SettingsError(f"ASG_CHALLENGE_MARKET_TASKS must be all or opted-in, not {tasks!r}")
    return MarketSettings(addr, token, types, in_flight, hold, tasks == "opted-in")


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The flags, each defaulting to its variable (tests/core/test_cli_help.py: all have help)."""
    p = argparse.ArgumentParser(prog="asg-challenge", description="The ASG challenge gateway (seed 003).")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=env.get("ASG_CHALLENGE_LISTEN", "127.0.0.1:8090"),
        help="listen address (ASG_CHALLENGE_LISTEN, 127.0.0.1:8090)",
    )
    p.add_argument(
        "--upstream",
        metavar="URL",
        default=env.get("ASG_CHALLENGE_UPSTREAM"),
        help="the one http(s)://host[:port] proxied to (ASG_CHALLENGE_UPSTREAM, required)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=env.get("ASG_CHALLENGE_DATA_DIR", "var/challenge"),
        help="where the store and the secret live (ASG_CHALLENGE_DATA_DIR, ./var/challenge)",
    )
    p.add_argument(
        "--trusted-proxies",
        default=env.get("ASG_CHALLENGE_TRUSTED_PROXIES", ""),
        help="comma-separated CIDRs whose X-Forwarded-For is believed",
    )
    p.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=env.get("ASG_CHALLENGE_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (ASG_CHALLENGE_LOG_LEVEL, INFO)",
    )
    p.add_argument(
        "--tls-cert",
        metavar="PEM",
        default=env.get("ASG_CHALLENGE_TLS_CERT"),
        help="certificate: serve https, cookies get __Host- (ASG_CHALLENGE_TLS_CERT)",
    )
    p.add_argument(
        "--tls-key",
        metavar="PEM",
        default=env.get("ASG_CHALLENGE_TLS_KEY"),
        help="its key (ASG_CHALLENGE_TLS_KEY)",
    )
    return p


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags and the environment, or SettingsError naming what is wrong."""
    env = os.environ if env is None else env
    a = parser(env).parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        raise SettingsError("--tls-cert and --tls-key (ASG_CHALLENGE_TLS_CERT / _KEY) go together")
    for flag, value in (("--tls-cert", a.tls_cert), ("--tls-key", a.tls_key)):
        if value and not Path(value).is_file():
            raise SettingsError(f"{flag} {value!r} is not a readable file")

    host, sep, port = str(a.listen).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"--listen / ASG_CHALLENGE_LISTEN must be HOST:PORT, not {a.listen!r}")
    if not a.upstream:
        raise SettingsError("--upstream / ASG_CHALLENGE_UPSTREAM is required (the one site proxied to)")
    up = urlsplit(a.upstream)
    if up.scheme not in ("http", "https") or not up.hostname or up.query or up.fragment:
        raise SettingsError(f"--upstream must be an http(s)://host[:port] URL, not {a.upstream!r}")
    if up.path not in ("", "/"):
        raise SettingsError("--upstream may not carry a path: requests keep their own")
    password = env.get("ASG_CHALLENGE_DASHBOARD_PASSWORD")
    if not password:
        raise SettingsError("ASG_CHALLENGE_DASHBOARD_PASSWORD is not set: the dashboard needs a password")
    if len(password) < MIN_PASSWORD:
        raise SettingsError(
            f"ASG_CHALLENGE_DASHBOARD_PASSWORD is {len(password)} characters; at least {MIN_PASSWORD} needed"
        )
    key = env.get("ASG_CHALLENGE_SECRET") or None
    if key is not None and len(key.encode()) < MIN_SECRET:
        raise SettingsError(f"ASG_CHALLENGE_SECRET must be at least {MIN_SECRET} bytes")
    try:
        trusted = parse_networks(a.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"--trusted-proxies: {exc}") from exc
    try:
        min_dwell = float(env.get("ASG_CHALLENGE_MIN_DWELL", "0.6"))
        budget = int(env.get("ASG_CHALLENGE_PASS_BUDGET", "300"))
        challenge_ttl = int(env.get("ASG_CHALLENGE_CHALLENGE_TTL", "600"))
    except ValueError as exc:
        raise SettingsError(
            f"ASG_CHALLENGE_MIN_DWELL / ASG_CHALLENGE_PASS_BUDGET / ASG_CHALLENGE_CHALLENGE_TTL: {exc}"
        ) from exc
    if not 1 <= challenge_ttl <= 86400:
        raise SettingsError("ASG_CHALLENGE_CHALLENGE_TTL must be 1 to 86400 seconds")
    try:
        explore = float(env.get("ASG_CHALLENGE_EXPLORE", "0.02"))
    except ValueError:
        explore = -1.0
    if not 0.0 <= explore <= 1.0:
        raise SettingsError(
            f"ASG_CHALLENGE_EXPLORE must be a share from 0 to 1, not {env.get('ASG_CHALLENGE_EXPLORE')!r}"
        )
    if str(a.log_level).upper() not in LOG_LEVELS:
        raise SettingsError(f"--log-level / ASG_CHALLENGE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    return Settings(
        listen_host=host.strip("[]"),
        listen_port=int(port),
        upstream=f"{up.scheme}://{up.netloc}",
        data_dir=Path(a.data_dir),
        dashboard_user=env.get("ASG_CHALLENGE_DASHBOARD_USER", "admin"),
        dashboard_password=password,
        secret=key,
        trusted_proxies=trusted,
        min_dwell=min_dwell,
        pass_budget=budget,
        challenge_ttl=challenge_ttl,
        explore=explore,
        log_level=str(a.log_level).upper(),
        tls_cert=Path(a.tls_cert) if a.tls_cert else None,
        tls_key=Path(a.tls_key) if a.tls_key else None,
        market=market_settings(env),
    )
