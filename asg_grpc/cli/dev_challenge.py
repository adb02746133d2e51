"""`asg dev`'s challenge gateway: `asg-challenge` in front of the demo site
(`asg_challenge/demo_site.py`), both as processes of the dev stack, so the README can show the
whole path (curl through the gateway, a challenge page, the dashboard API).

The dashboard password is generated once into the gateway's data dir (0600) and printed on
every start, unless ASG_CHALLENGE_DASHBOARD_PASSWORD sets one (docs/challenge.md, "Trying it")."""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from asg_grpc.devstack import Stack, StackError
from asg_grpc.settings import SettingsError

DEFAULT_CHALLENGE = "127.0.0.1:8090"
DEFAULT_DEMO_SITE = "127.0.0.1:8091"
DEFAULT_USER = "admin"
PASSWORD_FILE = "dashboard-password"
MIN_PASSWORD = 12  # asg-challenge refuses shorter ones (asg_challenge/settings.py)
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class ChallengeDemo:
    """Where the demo's two processes listen, and the dashboard's credentials."""

    listen: str
    site: str
    data_dir: Path
    user: str
    password: str

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def banner(self) -> str:
        return (
            f"  challenge  {self.url}   (asg-challenge in front of the demo site http://{self.site})\n"
            f"  dashboard  {self.url}/dashboard/api/   user {self.user}   password {self.password}\n"
        )


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--challenge",
        metavar="HOST:PORT|off",
        help=f"asg-challenge's address, or off (ASG_CHALLENGE_LISTEN, {DEFAULT_CHALLENGE})",
    )
    run.add_argument(
        "--demo-site",
        metavar="HOST:PORT",
        help=f"the demo site behind it (ASG_DEV_DEMO_SITE, {DEFAULT_DEMO_SITE})",
    )


def demo_settings(args: argparse.Namespace, env: Mapping[str, str], data_dir: Path) -> ChallengeDemo | None:
    """The demo's settings from flags and the environment (read here, once), or None when
    `--challenge off`. The password is created on first use and kept with the gateway's data."""
    listen = args.challenge or env.get("ASG_CHALLENGE_LISTEN") or DEFAULT_CHALLENGE
    if listen == "off":
        return None
    site = args.demo_site or env.get("ASG_DEV_DEMO_SITE") or DEFAULT_DEMO_SITE
    for name, value in (("--challenge", listen), ("--demo-site", site)):
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit():
            raise SettingsError(f"{name} must be HOST:PORT, got {value!r}")
    gateway_dir = data_dir / "challenge"
    password = env.get("ASG_CHALLENGE_DASHBOARD_PASSWORD") or _stored_password(gateway_dir)
    if len(password) < MIN_PASSWORD:
        raise SettingsError(f"ASG_CHALLENGE_DASHBOARD_PASSWORD needs at least {MIN_PASSWORD} characters")
    user = env.get("ASG_CHALLENGE_DASHBOARD_USER") or DEFAULT_USER
    return ChallengeDemo(listen, site, gateway_dir, user, password)


def _stored_password(gateway_dir: Path) -> str:
    path = gateway_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    gateway_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)  # 24 characters
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password


def start(stack: Stack, demo: ChallengeDemo) -> None:
    """The demo site, then asg-challenge in front of it; returns when both answer."""
    stack.spawn("demo-site", ["python", "-m", "asg_challenge.demo_site", "--listen", demo.site])
    stack.spawn(
        "challenge",
        ["asg-challenge", "--listen", demo.listen, "--upstream", f"http://{demo.site}",
         "--data-dir", str(demo.data_dir)],
        env={"ASG_CHALLENGE_DASHBOARD_USER": demo.user, "ASG_CHALLENGE_DASHBOARD_PASSWORD": demo.password},
    )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            site = httpx.get(f"http://{demo.site}/", timeout=1.0, trust_env=False)
            auth = (demo.user, demo.password)
            dash = httpx.get(f"{demo.url}/dashboard/api/metrics", auth=auth, timeout=1.0, trust_env=False)
            if site.status_code == 200 and dash.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise StackError(f"the challenge gateway did not answer within {READY_TIMEOUT:.0f}s")
