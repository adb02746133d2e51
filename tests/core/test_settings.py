"""Settings are read once, at each entry point: a variable that cannot be used stops the process
with exit code 2 and a message naming it (no traceback), and the core's start-up banner shows
the effective settings with every secret masked (docs/configuration.md)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bsv import PrivateKey

from asg_grpc.settings import Settings
from tests.conftest import until_serving

BIN = Path(sys.executable).parent
SECRETS = {
    "ASG_OPERATOR_TOKEN": "op_banner_secret_token",
    "ASG_SEALING_KEY": base64.b64encode(b"s" * 32).decode(),
    "ASG_WALLET_WIF": PrivateKey().wif(),
    "ASG_ARC_API_KEY": "arc_banner_secret_key",
}


def run(command: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ASG_LEASE_SECONDS": "soon"}, "ASG_LEASE_SECONDS"),
        ({"ASG_LOG_LEVEL": "LOUD"}, "ASG_LOG_LEVEL"),
        ({"ASG_BSV_NETWORK": "testnet"}, "ASG_ARC_URL"),
        ({"ASG_GENESIS_SATS": "lots"}, "ASG_GENESIS_SATS"),
        ({"ASG_STORE": "postgres://db/asg"}, "ASG_STORE"),
        ({"ASG_STORE": "aerospike://127.0.0.1:3000/"}, "ASG_STORE"),
        ({"ASG_IDEMPOTENCY_TTL": "0"}, "ASG_IDEMPOTENCY_TTL"),
        ({"ASG_METRICS_ADDR": "9464"}, "ASG_METRICS_ADDR"),
        # Refused while the core is assembled, from the value it names.
        ({"ASG_SEALING_KEY": "not base64!"}, "ASG_SEALING_KEY"),
        ({"ASG_WALLET_WIF": "not-a-wif"}, "ASG_WALLET_WIF"),
    ],
)
def test_the_core_refuses_a_bad_setting_with_exit_2_naming_it(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    done = run(
        [str(BIN / "asg-server")], {"ASG_DATA_DIR": str(tmp_path), "ASG_GRPC_ADDR": "127.0.0.1:0", **env}
    )
    assert done.returncode == 2, done.stderr
    # The last line (a setting refused while the core is assembled follows the banner).
    assert done.stderr.splitlines()[-1].startswith("asg-server: ") and variable in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"ASG_CORE_TIMEOUT": "never"}, "ASG_CORE_TIMEOUT"), ({"ASG_HTTP_ADDR": "nowhere"}, "ASG_HTTP_ADDR")],
)
def test_the_gateway_refuses_a_bad_setting_with_exit_2_naming_it(env: dict[str, str], variable: str) -> None:
    done = run([str(BIN / "asg-gateway")], env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("asg-gateway: ") and variable in done.stderr
    assert "Traceback" not in done.stderr


def test_an_operator_command_refuses_a_bad_setting_with_exit_2_naming_it(tmp_path: Path) -> None:
    done = run(
        [str(BIN / "asg"), "worker", "register", "--name", "w", "--payout-address", "1x"],
        {"ASG_DATA_DIR": str(tmp_path), "ASG_SQLITE_SYNCHRONOUS": "SOMETIMES"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("asg worker register: ") and "ASG_SQLITE_SYNCHRONOUS" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_banner_masks_every_secret() -> None:
    settings = Settings.from_env(
        {**SECRETS, "ASG_BSV_NETWORK": "testnet", "ASG_ARC_URL": "https://arc.example.com"}
    )
    banner = settings.banner()
    shown = json.dumps(banner)
    assert not [name for name, value in SECRETS.items() if value in shown]
    assert banner["operator_token"] == banner["sealing_key"] == "***"
    assert banner["ledger"]["wallet_wif"] == banner["arc"]["api_key"] == "***"
    assert banner["arc"]["arc_url"] == "https://arc.example.com"
    assert Settings().banner()["operator_token"] is None  # unset: generated into the data dir
    assert not [name for name, value in SECRETS.items() if value in repr(settings)]


def test_the_core_logs_one_banner_line_with_its_secrets_masked(tmp_path: Path) -> None:
    env = {
        **SECRETS,
        "ASG_DATA_DIR": str(tmp_path),
        "ASG_GRPC_ADDR": "127.0.0.1:0",
        "ASG_BSV_NETWORK": "testnet",
        "ASG_ARC_URL": "https://arc.example.com",
        "ASG_DISPATCH": "off",  # serves without settling: nothing is sent to ARC
    }
    core = subprocess.Popen(
        [str(BIN / "asg-server")], env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
    )
    lines, rest = until_serving(core)
    output = "".join(lines) + rest
    banners = [json.loads(line) for line in lines if '"core settings"' in line]
    assert len(banners) == 1, output
    shown = banners[0]["settings"]
    assert shown["operator_token"] == shown["ledger"]["wallet_wif"] == shown["arc"]["api_key"] == "***"
    assert shown["ledger"]["network"] == "testnet" and shown["dispatch"] is False
    assert not [name for name, value in SECRETS.items() if value in output]
    assert core.returncode == 0, output


@pytest.mark.parametrize(("raw", "on"), [("", False), ("on", True), ("1", True), ("off", False)])
def test_development_mode_is_off_unless_asked_for_and_is_in_the_banner(raw: str, on: bool) -> None:
    settings = Settings.from_env({"ASG_DEV_MODE": raw} if raw else {})
    assert settings.dev_mode is on
    assert settings.banner()["dev_mode"] is on


def test_a_bad_development_mode_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="ASG_DEV_MODE must be on or off"):
        Settings.from_env({"ASG_DEV_MODE": "maybe"})
