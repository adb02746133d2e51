"""Labeling end to end, with every part a real process.

Core (`asg-server`), gateway (`asg-gateway`) and labelers (`asg-worker --labeler simulated`) run
as processes; the test talks HTTP to the gateway, as a customer would, and reads the SQLite file
read-only where the API does not show what it needs (labels of a task still in progress). Each
test starts a stack of its own, so the dispatcher sees only that test's tasks.

Deadlines are generous completion deadlines, never measurements.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from asg_gateway import ASGGatewayClient
from asg_grpc.devstack import Stack, free_addr
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc
from tests.conftest import make_stack, register

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# The quickstart's step-2 body, exactly.
STEP2_BODY: dict[str, Any] = {
    "type": "image_classification",
    "data_url": "https://example.com/image.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
    "consensus_threshold": 3,
}
DONE = ("verified", "settled", "failed")


# --- helpers ---------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """`check()` until it returns something truthy; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s (last: {value!r})")
        time.sleep(interval)


def customer_client(stack: Stack) -> httpx.Client:
    key = register(stack.base_url)["api_key"]
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)


def task_body(n: int, options: list[str], threshold: int, question: str = "Animal?") -> dict[str, Any]:
    return {
        "type": "image_classification",
        "data_url": f"https://cdn.example.com/e2e/{n}.jpg",
        "label_spec": {"question": question, "options": options},
        "consensus_threshold": threshold,
    }


def submit(http: httpx.Client, body: dict[str, Any]) -> str:
    reply = http.post("/v1/tasks", json=body)
    assert reply.status_code == 202, reply.text
    task_id: str = reply.json()["task_id"]
    return task_id


def final_result(http: httpx.Client, task_id: str, timeout: float) -> dict[str, Any]:
    """Polls GET /v1/tasks/{id}/result until 200; every answer before that must be a 202."""

    def done() -> dict[str, Any] | None:
        reply = http.get(f"/v1/tasks/{task_id}/result")
        if reply.status_code == 202:
            assert reply.json()["status"] in ("pending", "in_progress"), reply.text
            return None
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        assert body["status"] in DONE, body
        return body

    result: dict[str, Any] = wait_for(f"result of {task_id}", done, timeout)
    return result


def settled(http: httpx.Client, task_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = http.get(f"/v1/tasks/{task_id}/result").json()
    return body if body["status"] == "settled" else None


def final_results(http: httpx.Client, task_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """The 200 results of all `task_ids`, all within one deadline of `timeout` s."""
    deadline = time.monotonic() + timeout
    return [final_result(http, t, max(0.0, deadline - time.monotonic())) for t in task_ids]


def task_status(http: httpx.Client, task_id: str) -> str:
    reply = http.get(f"/v1/tasks/{task_id}")
    assert reply.status_code == 200, reply.text
    status: str = reply.json()["status"]
    return status


def stored_labels(stack: Stack, task_id: str) -> list[tuple[str, str, float]]:
    """(worker_id, option, created_at) of the task's committed labels, from the SQLite file
    opened read-only."""
    uri = f"file:{stack.data_dir / 'asg.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as db:
        rows = db.execute(
            "SELECT worker_id, option, created_at FROM labels WHERE task_id = ? ORDER BY worker_id",
            (task_id,),
        ).fetchall()
    return [(str(worker_id), str(option), float(created)) for worker_id, option, created in rows]


def spawn_agent(stack: Stack, name: str, token: str, *args: str) -> subprocess.Popen[bytes]:
    return stack.spawn(
        name,
        ["asg-worker", "--server", stack.grpc_addr, "--labeler", "simulated", *args],
        env={"ASG_WORKER_TOKEN": token},
    )


def log_events(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The JSON lines a process of the stack wrote so far (a half-written last line is skipped)."""
    assert stack.log_dir is not None
    events = []
    for line in (stack.log_dir / f"{name}.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


def acked_labels(stack: Stack, name: str) -> int:
    """The agent's own count of acked labels, from its latest progress line."""
    counts = [e["labels_acked"] for e in log_events(stack, name) if e.get("msg") == "progress"]
    return counts[-1] if counts else 0


# --- process tree of `asg dev` ---------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a live process, None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    state, ppid, start = fields[0], int(fields[1]), int(fields[19])
    return None if state in ("Z", "X") else (state, ppid, start)


def descendants(root: int) -> dict[int, int]:
    """pid → start time of every live process below `root`."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = (stat[1], stat[2])
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def command_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "(gone)"
    # Console scripts run as `python /…/bin/asg-server …`.
    return next((Path(a.decode()).name for a in argv if Path(a.decode()).name.startswith("asg")), "")


def alive(pids: dict[int, int]) -> list[int]:
    """Those of `pids` still running (same pid and same start time: not a recycled pid)."""
    return [pid for pid, start in pids.items() if (s := proc_stat(pid)) is not None and s[2] == start]


# --- 1. the quickstart against `asg dev` -----------------------------------------------------


@dataclass
class Dev:
    """`asg dev` running as a real process, and what it started."""

    proc: subprocess.Popen[bytes]
    base_url: str
    out_path: Path
    children: dict[int, int]  # pid → start time, of every process below `asg dev`

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stop(self, signum: signal.Signals) -> int:
        """Sends `signum` to `asg dev` only (as a terminal's Ctrl-C would); its exit code."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=20)


@contextlib.contextmanager
def asg_dev(tmp_path: Path, workers: int, **extra_env: str) -> Iterator[Dev]:
    http_addr, grpc_addr = free_addr(), free_addr()
    out_path = tmp_path / "asg-dev.out"
    command = [str(BIN / "asg"), "dev", "--http", http_addr, "--grpc", grpc_addr]
    command += ["--data-dir", str(tmp_path / "data"), "--workers", str(workers)]
    # The challenge gateway and its demo site on free ports too (8090/8091 may be taken).
    command += ["--challenge", free_addr(), "--demo-site", free_addr()]
    with open(out_path, "wb") as out:
        # A free port for the core's /metrics: the default 9464 may be another stack's.
        env = {**os.environ, "ASG_METRICS_ADDR": free_addr(), **extra_env}
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        dev = Dev(proc, f"http://{http_addr}", out_path, {})
        try:

            def up() -> bool:
                assert proc.poll() is None, dev.output()
                return "dev stack is up" in dev.output()

            wait_for("asg dev says the stack is up", up, 45)
            dev.children = descendants(proc.pid)
            yield dev
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in alive(dev.children):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def assert_stopped_cleanly(dev: Dev, signum: signal.Signals) -> None:
    code = dev.stop(signum)
    assert code == 0, dev.output()
    assert "dev stack stopped" in dev.output()
    survivors = alive(dev.children)
    assert survivors == [], {pid: command_name(pid) for pid in survivors}


def test_quickstart_steps_2_to_4_against_asg_dev_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with asg_dev(tmp_path, workers=3) as dev:
        assert httpx.get(f"{dev.base_url}/v1/health", timeout=5).status_code == 200
        names = sorted(command_name(pid) for pid in dev.children)
        expected = ["asg-challenge", "asg-gateway", "asg-server", "asg-worker", "asg-worker", "asg-worker"]
        assert names == sorted([*expected, "asg_challenge.demo_site"]), names
        # The banner names the core's /metrics, and it answers there (docs/operations.md).
        core_metrics = re.search(r"(http://\S+/metrics) \(core\)", dev.output())
        assert core_metrics, dev.output()
        assert "asg_tasks" in httpx.get(core_metrics.group(1), timeout=5).text

        # Step 1: register; step 2: submit the quickstart's body.
        key = register(dev.base_url, "Demo")["api_key"]
        with httpx.Client(
            base_url=dev.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            task_id = submit(http, STEP2_BODY)

            # Step 4 while labeling: dev workers take a second per label.
            first = http.get(f"/v1/tasks/{task_id}/result")
            assert first.status_code == 202, first.text
            assert set(first.json()) == {"status", "message"}
            assert first.json()["status"] in ("pending", "in_progress")
            assert first.json()["message"]

            final_result(http, task_id, 30)
            # Settlement pays the agreeing workers within about a second of the decision.
            result = wait_for(f"{task_id} settled", lambda: settled(http, task_id), 30)

        assert result["status"] == "settled"
        assert result["task_id"] == task_id
        assert result["consensus_label"] in ("cat", "dog")
        assert result["worker_count"] == 3
        assert result["agreement_count"] >= 2
        assert result["confidence"] == result["agreement_count"] / result["worker_count"]
        assert result["label_spec"] == STEP2_BODY["label_spec"]
        settlement = result["settlement"]
        assert set(settlement) == {"bsv_txid", "total_cost_sats", "settled_at"}
        assert re.fullmatch(r"[0-9a-f]{64}", settlement["bsv_txid"])
        assert settlement["total_cost_sats"] == 1000  # 3 labels × 300 + 100, seed 001
        assert len({label["worker_id"] for label in result["labels"]}) == 3

        # The SDK's way of waiting, on a task of its own.
        with ASGGatewayClient(api_key=key, base_url=dev.base_url) as client:
            submitted = client.submit_task(
                task_type="image_classification",
                data_url="https://example.com/image.jpg",
                label_spec={"question": "Animal?", "options": ["cat", "dog"]},
                consensus_threshold=3,
            )
            polled = client.poll_result(submitted["task_id"], timeout=60, interval=0.5)
        # poll_result returns at the first 200: verified, or settled already.
        assert polled["status"] in ("verified", "settled")
        assert polled["task_id"] == submitted["task_id"]
        assert polled["consensus_label"] in ("cat", "dog")
        assert polled["worker_count"] == 3
        assert polled["confidence"] == polled["agreement_count"] / polled["worker_count"]
        assert (polled["settlement"] is None) == (polled["status"] == "verified")

        # Ctrl-C: `asg dev` stops what it started and exits 0.
        assert_stopped_cleanly(dev, signal.SIGINT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup-closed-terminal"])
def test_asg_dev_exits_0_on_sigterm_or_sighup_and_leaves_no_process_behind(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with asg_dev(tmp_path, workers=2) as dev:
        assert len(dev.children) >= 4, {pid: command_name(pid) for pid in dev.children}
        assert_stopped_cleanly(dev, sig)


# --- 2. confidence as documented -------------------------------------------------------------


def test_two_of_three_agreeing_agents_give_confidence_two_thirds(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack, customer_client(stack) as http:
        task_id = submit(http, task_body(1, ["cat", "dog"], threshold=3))
        for i, (token, answer) in enumerate(zip(stack.dev_workers(3), ["cat", "cat", "dog"], strict=True)):
            spawn_agent(stack, f"agent-{answer}-{i}", token, "--always", answer)

        result = final_result(http, task_id, 20)

        assert result["status"] == "verified"
        assert result["consensus_label"] == "cat"
        assert result["confidence"] == 0.6666666666666666
        assert result["worker_count"] == 3
        assert result["agreement_count"] == 2
        assert sorted(label["option"] for label in result["labels"]) == ["cat", "cat", "dog"]
        assert result["settlement"] is None


# --- 3. a vanished agent's slots come back at once -------------------------------------------


def test_killed_agents_assignments_go_to_other_agents_before_the_lease_expires(tmp_path: Path) -> None:
    # The default lease (60 s): completion well before it proves the slots came back because
    # the stream closed.
    with make_stack(tmp_path, ASG_LEASE_SECONDS="60") as stack, customer_client(stack) as http:
        slow_token, *fast_tokens = stack.dev_workers(3)
        task_ids = [submit(http, task_body(n, ["cat", "dog"], threshold=2)) for n in range(5)]
        spawn_agent(stack, "slow", slow_token, "--delay", "30", "--max-in-flight", "5")

        # The slow agent claims all five (the first claim makes a task in_progress), and labels none.
        wait_for(
            "the slow agent holds every task",
            lambda: all(task_status(http, t) == "in_progress" for t in task_ids),
            15,
        )
        assert all(stored_labels(stack, t) == [] for t in task_ids)

        stack.kill("slow")
        for i, token in enumerate(fast_tokens):
            spawn_agent(stack, f"fast-{i}", token)

        # Threshold 2 and two new agents: each task needs both, so each needs the slow
        # agent's slot back.
        results = final_results(http, task_ids, 15)  # far from the 60 s lease

        for result in results:
            assert result["status"] == "verified", result
            assert result["worker_count"] == 2
            assert result["agreement_count"] == 2
            assert result["confidence"] == 1.0
        workers = {label["worker_id"] for r in results for label in r["labels"]}
        assert len(workers) == 2  # the two new agents, never the killed one


# --- 4. a core crash loses no acked label ----------------------------------------------------


def test_acked_labels_survive_a_core_crash_and_agents_reconnect_by_themselves(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack, customer_client(stack) as http:
        tokens = stack.dev_workers(3)
        task_id = submit(http, task_body(1, ["cat", "dog"], threshold=3))
        originals = [
            spawn_agent(stack, f"cat-{i}", tokens[i], "--always", "cat", "--progress", "0.2")
            for i in range(2)
        ]

        wait_for("two committed labels", lambda: len(stored_labels(stack, task_id)) == 2, 15)
        wait_for(
            "both agents got their ack",
            lambda: all(acked_labels(stack, f"cat-{i}") >= 1 for i in range(2)),
            15,
        )
        before = stored_labels(stack, task_id)
        assert [option for _, option, _ in before] == ["cat", "cat"]
        assert http.get(f"/v1/tasks/{task_id}/result").status_code == 202

        stack.kill("core")
        stack.start_core()
        stack.wait_ready()

        # Still counted after the restart (the same rows, not labels sent again): the task
        # waits for one more label only.
        assert stored_labels(stack, task_id) == before
        pending = http.get(f"/v1/tasks/{task_id}/result")
        assert pending.status_code == 202, pending.text
        assert pending.json()["status"] == "in_progress"

        spawn_agent(stack, "dog", tokens[2], "--always", "dog")
        result = final_result(http, task_id, 20)

        assert result["status"] in ("verified", "settled")  # settled once the payout confirms
        assert result["worker_count"] == 3
        assert result["agreement_count"] == 2
        assert result["consensus_label"] == "cat"
        labels = {(label["worker_id"], label["option"]) for label in result["labels"]}
        assert {(worker, option) for worker, option, _ in before} <= labels
        assert len(labels) == 3
        assert set(before) <= set(stored_labels(stack, task_id))

        # The original agents never stopped, and reconnected on their own: they label a task
        # submitted after the restart (the `dog` agent skips it: "dog" is not an option).
        assert all(proc.poll() is None for proc in originals)
        after = submit(http, task_body(2, ["cat", "bird"], threshold=2))
        second = final_result(http, after, 20)
        assert second["status"] in ("verified", "settled")
        assert second["consensus_label"] == "cat"
        assert {label["worker_id"] for label in second["labels"]} == {w for w, _, _ in before}
        for i in range(2):
            connects = [e for e in log_events(stack, f"cat-{i}") if e.get("msg") == "connected"]
            assert len(connects) >= 2, connects  # to the first core, then to the restarted one


# --- 5. a bad or missing worker token --------------------------------------------------------


def test_agent_with_a_bogus_token_is_refused_and_exits_2(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack:
        agent = spawn_agent(stack, "bogus", "wk_bogus")
        code = agent.wait(timeout=15)
        assert stack.log_dir is not None
        output = (stack.log_dir / "bogus.log").read_text(errors="replace")
        assert code == 2, output
        assert "unauthenticated" in output.lower() or "invalid" in output.lower(), output


def test_work_stream_without_a_valid_worker_token_is_unauthenticated(tmp_path: Path) -> None:
    refusals = {
        "missing": (),
        "bogus": (("authorization", "Bearer wk_bogus"),),
        "not bearer": (("authorization", "Basic d2s6Ym9ndXM="),),
    }
    hello = labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1))
    with make_stack(tmp_path) as stack, grpc.insecure_channel(stack.grpc_addr) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        for case, metadata in refusals.items():
            stream = stub.Work(iter([hello]), metadata=metadata, timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                next(stream)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (case, refused.value)


# --- 6. no consensus -------------------------------------------------------------------------


def test_four_disagreeing_agents_fail_a_threshold_two_task_with_no_consensus(tmp_path: Path) -> None:
    with make_stack(tmp_path) as stack, customer_client(stack) as http:
        options = ["a", "b", "c", "d"]
        task_id = submit(http, task_body(1, options, threshold=2, question="Letter?"))
        for token, answer in zip(stack.dev_workers(4), options, strict=True):
            spawn_agent(stack, f"agent-{answer}", token, "--always", answer)

        result = final_result(http, task_id, 20)

        assert result["status"] == "failed"
        assert result["failure_reason"] == "no_consensus"
        assert result["consensus_label"] is None
        # One more label at a time, up to twice the threshold.
        assert sorted(label["option"] for label in result["labels"]) == options
        assert result["settlement"] is None
