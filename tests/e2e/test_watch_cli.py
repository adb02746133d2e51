"""`asg tasks watch` and `asg jobs watch` as a customer runs them: the installed console script,
against a real stack whose simulated workers decide the batch (or the job's tasks, read from a
manifest on a real S3-compatible server, moto) while the command watches it.

The workers take only image_classification, so tasks of another type stay open."""

from __future__ import annotations

import json
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
from tests.manifest_servers import S3Server

ASG = str(Path(sys.executable).with_name("asg"))
TASKS = 6
JOB_LINES = 3
MANIFEST = (
    "".join(
        json.dumps({"data_url": f"https://cdn.example.com/job/{i}.jpg", "metadata": {"n": i}}) + "\n"
        for i in range(JOB_LINES)
    ).encode()
    + b'{"metadata": {"n": "no data_url"}}\n'
)


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


def read(base_url: str, api_key: str, path: str) -> dict:
    """GET `path` as the customer; 200 expected."""
    reply = httpx.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {api_key}"})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def batch(base_url: str, api_key: str, batch_id: str) -> dict:
    return read(base_url, api_key, f"/v1/tasks/batch/{batch_id}")


def asg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `asg` on a pipe, as a script or CI log runs it."""
    return subprocess.run([ASG, *args], capture_output=True, text=True, timeout=120, env=env)


def test_watch_follows_a_batch_to_the_end_and_prints_its_counts(
    watch_stack: Stack, env: dict[str, str]
) -> None:
    batch_id = submit_batch(watch_stack.base_url, env["ASG_API_KEY"])
    done = asg(env, "tasks", "watch", "--batch", batch_id, "--interval", "0.2")
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
    done = asg(env, "tasks", "watch", "--batch", "bat_nope")
    assert done.returncode == 1
    assert done.stderr.startswith("asg tasks watch: NotFoundError")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


def create_job(base_url: str, api_key: str, s3: S3Server, key: str, task_type: str) -> str:
    """POST /v1/jobs as the customer would, reading s3://manifests/<key>."""
    reply = httpx.post(
        f"{base_url}/v1/jobs",
        json={
            "manifest_url": f"s3://manifests/{key}",
            "s3_credentials": s3.credentials(),
            "type": task_type,
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
        },
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["job_id"])


def job(base_url: str, api_key: str, job_id: str) -> dict:
    return read(base_url, api_key, f"/v1/jobs/{job_id}")


def test_jobs_watch_follows_a_job_to_completion_and_prints_its_summary(
    watch_stack: Stack, env: dict[str, str], s3: S3Server
) -> None:
    s3.put("manifests", "watched.jsonl", MANIFEST)
    job_id = create_job(watch_stack.base_url, env["ASG_API_KEY"], s3, "watched.jsonl", "image_classification")
    done = asg(env, "jobs", "watch", job_id, "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    final = job(watch_stack.base_url, env["ASG_API_KEY"], job_id)
    assert final["status"] == "completed"
    counts = final["counts"]
    decided = counts["verified"] + counts["settled"] + counts["failed"]
    # The summary says what the API says.
    assert done.stdout.splitlines()[0] == (
        f"job {job_id} completed: 4 lines read, {JOB_LINES} tasks ({JOB_LINES} created, 0 reused),"
        " 1 invalid lines"
    )
    assert f"decided {decided}/{JOB_LINES}: {counts['verified']} verified, {counts['settled']} settled" in (
        done.stdout
    )
    assert "line 4: data_url" in done.stdout
    # On a pipe, one plain progress line per change, ending with every task decided.
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"job {job_id}: ") for line in lines), lines
    assert f"{JOB_LINES}/{JOB_LINES} decided" in lines[-1] and "open" not in lines[-1]
    assert re.search(r" · \d+\.\d/s · ", lines[-1]), lines[-1]


def test_jobs_watch_exits_1_when_the_job_fails_and_says_why(
    watch_stack: Stack, env: dict[str, str], s3: S3Server
) -> None:
    s3.put("manifests", "other.jsonl", MANIFEST)  # the bucket exists, the key does not
    job_id = create_job(watch_stack.base_url, env["ASG_API_KEY"], s3, "missing.jsonl", "image_classification")
    done = asg(env, "jobs", "watch", job_id, "--interval", "0.2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"job {job_id} failed: ")
    assert "NoSuchKey" in done.stdout


def test_jobs_watch_on_a_terminal_draws_a_bar_and_ctrl_c_leaves_the_job_alone(
    watch_stack: Stack, env: dict[str, str], s3: S3Server
) -> None:
    """A job nobody labels (no worker takes sentiment tasks): 0 decided, its tasks open."""
    s3.put("manifests", "untaken.jsonl", MANIFEST)
    job_id = create_job(watch_stack.base_url, env["ASG_API_KEY"], s3, "untaken.jsonl", "sentiment")
    child = pexpect.spawn(
        ASG, ["jobs", "watch", job_id], env=env, encoding="utf-8", timeout=30, dimensions=(24, 160)
    )
    child.expect(rf"0/{JOB_LINES}")
    child.expect(f"open {JOB_LINES}")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert job(watch_stack.base_url, env["ASG_API_KEY"], job_id)["status"] == "labeling"


def test_jobs_watch_of_an_unknown_job_is_an_error_naming_it(env: dict[str, str]) -> None:
    done = asg(env, "jobs", "watch", "job_nope")
    assert done.returncode == 1
    assert done.stderr.startswith("asg jobs watch: NotFoundError")
