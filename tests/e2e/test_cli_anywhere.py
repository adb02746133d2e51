"""The `asg` commands find the stack `asg dev` started from any directory (docs/cli.md, "Where
the commands find the stack"): no ASG_* variable, no flag, another working directory."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asg_grpc.devstack import free_addr
from tests.conftest import register, stop_process
from tests.e2e.test_labeling import wait_for

BIN = Path(sys.executable).parent
ADDRESS = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


def clean_env(state: Path) -> dict[str, str]:
    """A shell with no ASG_* variable, its state under `state`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASG_", "AWS_"))}
    env["XDG_STATE_HOME"] = str(state)
    env["ASG_METRICS_ADDR"] = free_addr()  # not `asg dev`'s default 9464: another stack's, maybe
    return env


def asg(
    cwd: Path, state: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(state), **(extra or {})}
    return subprocess.run(
        [str(BIN / "asg"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


@contextlib.contextmanager
def asg_dev_in(clone: Path, state: Path) -> Iterator[str]:
    """`asg dev` run from `clone` on its default data dir (./var); yields the REST base URL."""
    http_addr = free_addr()
    out_path = clone / "asg-dev.out"
    command = [str(BIN / "asg"), "dev", "--http", http_addr, "--grpc", free_addr(), "--workers", "0"]
    command += ["--challenge", "off"]  # not needed here, and its default port may be taken
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=clone,
            env=clean_env(state),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def up() -> bool:
                assert proc.poll() is None, out_path.read_text()
                return "dev stack is up" in out_path.read_text()

            wait_for("asg dev says the stack is up", up, 45)
            yield f"http://{http_addr}"
        finally:
            stop_process(proc)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    clone, elsewhere, state = tmp_path / "clone", tmp_path / "elsewhere", tmp_path / "state"
    for path in (clone, elsewhere, state):
        path.mkdir()
    return clone, elsewhere, state


def test_customer_tier_and_worker_register_work_from_another_directory(dirs: tuple[Path, Path, Path]) -> None:
    clone, elsewhere, state = dirs
    with asg_dev_in(clone, state) as base_url:
        assert (clone / "var" / "operator_token").exists(), "asg dev used ./var of its directory"
        customer = register(base_url)

        done = asg(elsewhere, state, "customer", "tier", customer["customer_id"], "pro")
        assert done.returncode == 0, done.stderr
        assert "tier:        pro" in done.stdout

        done = asg(elsewhere, state, "worker", "register", "--name", "far", "--payout-address", ADDRESS)
        assert done.returncode == 0, done.stderr
        assert "wk_" in done.stdout

        # A customer's command finds the recorded REST API too (not localhost:8081).
        env_key = {"ASG_API_KEY": customer["api_key"]}
        done = asg(elsewhere, state, "jobs", "status", "job_nope", extra=env_key)
        assert done.returncode == 1
        assert "NotFoundError" in done.stderr, done.stderr

        # Without the record (another user, or a state dir wiped) the command says what it tried.
        empty = elsewhere / "no-state"
        done = asg(elsewhere, empty, "customer", "tier", customer["customer_id"], "pro")
        assert done.returncode == 2
        assert "asg dev" in done.stderr and str(elsewhere / "var" / "operator_token") in done.stderr

        # A --data-dir given explicitly wins over the record.
        done = asg(
            elsewhere, state, "customer", "tier", customer["customer_id"], "pro", "--data-dir", "nowhere"
        )
        assert done.returncode == 2
        assert str(elsewhere / "nowhere" / "operator_token") in done.stderr
    assert not (elsewhere / "var").exists(), "nothing was created in the other directory"
