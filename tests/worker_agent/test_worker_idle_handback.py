"""A person at the interactive labeler, against the real core: the log stays out of the prompt,
and a question nobody answers goes back to pending and is decided by other workers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import worker_env

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register
from tests.e2e.test_labeling import wait_for

IDLE = "1.5"  # --answer-timeout of the person who walked away


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own: the simulated workers started here would label other tests' tasks."""
    with make_stack(tmp_path) as s:
        yield s


def wait_until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    return wait_for(what, check, timeout, interval=0.05)


def spawn_person(
    worker_bin: str, stack: Stack, token: str, tmp_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    """`asg-worker --labeler interactive` on pipes: stdin held open and never written (a person
    who walked away), stdout and stderr to files."""
    port = int(stack.grpc_addr.rsplit(":", 1)[1])
    env = worker_env(port, ASG_WORKER_TOKEN=token, ASG_LOG_LEVEL="", ASG_WORKER_ANSWER_TIMEOUT=IDLE)
    with (tmp_path / "stdout").open("wb") as out, (tmp_path / "stderr").open("wb") as err:
        return subprocess.Popen(
            [worker_bin, "--labeler", "interactive", *args],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=env,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (a person's drain), then close the stdin we held open."""
    proc.terminate()
    try:
        return proc.wait(20)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def submit(http: httpx.Client) -> str:
    body = {
        "type": "image_classification",
        "data_url": "https://cdn.example.com/idle/1.jpg",
        "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
        "consensus_threshold": 2,
    }
    reply = http.post("/v1/tasks", json=body)
    assert reply.status_code == 202, reply.text
    task_id: str = reply.json()["task_id"]
    return task_id


def test_an_idle_person_hands_the_task_back_and_simulated_workers_decide_it(
    worker_bin: str, own_stack: Stack, tmp_path: Path
) -> None:
    *simulated, person = own_stack.dev_workers(3)
    log_file = tmp_path / "worker.log"
    proc = spawn_person(worker_bin, own_stack, person, tmp_path, "--log-file", str(log_file))
    key = register(own_stack.base_url)["api_key"]
    try:
        with httpx.Client(
            base_url=own_stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            task_id = submit(http)
            stdout = tmp_path / "stdout"
            wait_until("the question on stdout", lambda: f"Task {task_id}" in stdout.read_text())
            assert http.get(f"/v1/tasks/{task_id}").json()["status"] == "in_progress"
            wait_until("the hand-back", lambda: f"no answer within {IDLE} s" in stdout.read_text())
            # Back to pending, long before the 60 s lease would have ended.
            wait_until(
                "pending again", lambda: http.get(f"/v1/tasks/{task_id}").json()["status"] == "pending"
            )

            own_stack.start_workers(len(simulated))  # dev-worker-0 and -1; the person is dev-worker-2
            started = time.monotonic()
            result = wait_until(
                "the decision",
                lambda: (r := http.get(f"/v1/tasks/{task_id}/result")).status_code == 200 and r.json(),
            )
            assert time.monotonic() - started < 15
        assert result["status"] in ("verified", "settled")
        assert result["worker_count"] == 2
        people = {label["worker_id"] for label in result["labels"]}
        welcome = next(e for e in json_lines(log_file.read_text()) if e["msg"] == "connected")
        assert welcome["worker_id"] not in people, "the person who walked away labeled nothing"
    finally:
        assert stop(proc) == 0

    screen = (tmp_path / "stdout").read_text()
    assert "Answer 1-2, or s to skip: " in screen
    assert '{"' not in screen, "no JSON log line in what the person reads"
    assert (tmp_path / "stderr").read_text() == "", "with --log-file, nothing goes to stderr"
    logged = json_lines(log_file.read_text())
    assert {"connected", "draining"} <= {e["msg"] for e in logged}, "INFO lines are in the file"


def test_without_a_log_file_only_warnings_reach_stderr(
    worker_bin: str, own_stack: Stack, tmp_path: Path
) -> None:
    (person,) = own_stack.dev_workers(1)
    proc = spawn_person(worker_bin, own_stack, person, tmp_path)
    try:
        wait_until("the greeting", lambda: "tasks will appear here" in (tmp_path / "stdout").read_text())
        time.sleep(1.0)  # connected by now: the INFO line "connected" would have been written
    finally:
        assert stop(proc) == 0
    logged = json_lines((tmp_path / "stderr").read_text())
    assert logged, "stdin is a pipe: the agent warns that answers are read from it line by line"
    assert {e["level"] for e in logged} <= {"warning", "error"}, logged
    assert '{"' not in (tmp_path / "stdout").read_text()
