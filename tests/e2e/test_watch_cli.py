"""`asg tasks watch` as a customer runs it: the installed console script, against a real stack
whose simulated workers decide the batch while the command watches it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

ASG = str(Path(sys.executable).with_name("asg"))
TASKS = 6


@pytest.fixture(scope="module")
def watch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("watch-cli")) as stack:
        stack.start_workers(3, "--task-types", "image_classification")
        yield stack


@pytest.fixture(scope="module")
def env(watch_stack: Stack) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASG_")}
    api_key = str(register(watch_stack.base_url)["api_key"])
    return {**clean, "ASG_API_URL": watch_stack.base_url, "ASG_API_KEY": api_key}


def submit_batch(base_url: str, api_key: str, task_type: str = "image_classification") -> str:
    tasks = [
        {
            "type": task_type,
            "data_url": f"https://cdn.example.com/{n}.jpg",
            "label_spec": {"question": "Cat?", "options": ["yes", "no"]},
        }
        for n in range(TASKS)
    ]
    reply = httpx.post(
        f"{base_url}/v1/tasks/batch", json={"tasks": tasks}, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["batch_id"])


def batch(base_url: str, api_key: str, batch_id: str) -> dict:
    reply = httpx.get(f"{base_url}/v1/tasks/batch/{batch_id}", headers={"Authorization": f"Bearer {api_key}"})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_watch_follows_a_batch_to_the_end_and_prints_its_counts(
    watch_stack: Stack, env: dict[str, str]
) -> None:
    batch_id = submit_batch(watch_stack.base_url, env["ASG_API_KEY"])
    done = subprocess.run(
        [ASG, "tasks", "watch", "--batch", batch_id, "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    final = batch(watch_stack.base_url, env["ASG_API_KEY"], batch_id)
    assert final["decided"] == TASKS
    # The last line names what the API says, status by status.
    shown = dict(re.findall(r"(\w+) (\d+)", done.stdout.rsplit(": ", 1)[1]))
    assert {k: int(v) for k, v in shown.items()} == {k: v for k, v in final["counts"].items() if v}
    # On a pipe, one plain progress line per change, ending at all decided.
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"batch {batch_id}: ") for line in lines)
    assert f"{TASKS}/{TASKS} decided" in lines[-1]


def test_watch_on_a_terminal_draws_a_bar_and_ctrl_c_leaves_the_tasks_alone(
    watch_stack: Stack, env: dict[str, str]
) -> None:
    """A batch nobody takes (no worker labels text tasks): the bar stays at 0 until Ctrl-C."""
    batch_id = submit_batch(watch_stack.base_url, env["ASG_API_KEY"], task_type="text_classification")
    args = ["tasks", "watch", "--batch", batch_id]
    child = pexpect.spawn(ASG, args, env=env, encoding="utf-8", timeout=30, dimensions=(24, 160))
    child.expect(rf"0/{TASKS}")
    child.expect("pending 6")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert batch(watch_stack.base_url, env["ASG_API_KEY"], batch_id)["counts"]["pending"] == TASKS


def test_an_unknown_batch_is_an_error_naming_it(env: dict[str, str]) -> None:
    done = subprocess.run(
        [ASG, "tasks", "watch", "--batch", "bat_nope"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert done.stderr.startswith("asg tasks watch: NotFoundError")
