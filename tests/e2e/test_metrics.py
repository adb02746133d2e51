"""/metrics on the gateway and the core, scraped with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asg_grpc.devstack import free_addr
from tests.conftest import make_stack, register

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
BIN = Path(sys.executable).parent
TASK = {
    "type": "image_classification",
    "data_url": "https://cdn.example.com/metrics/1.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
}


def dashboard_metrics() -> set[str]:
    """The metric names the sample Grafana dashboard queries (`asg_…`, histogram suffixes off)."""
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    return {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"\basg_\w+", e)}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if all(got.get(k) == x for k, x in labels.items()))


def test_gateway_and_core_metrics_count_what_a_user_did(tmp_path: Path) -> None:
    metrics_addr = free_addr()
    with make_stack(tmp_path, ASG_METRICS_ADDR=metrics_addr) as stack:  # no workers: stays pending
        key = register(stack.base_url)["api_key"]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        ) as http:
            reply = http.post("/v1/tasks", json=TASK)
            assert reply.status_code in (201, 202), reply.text
            missing = http.get("/v1/tasks/tsk_doesnotexist")
            assert missing.status_code == 404, missing.text
            scraped = httpx.get(f"{stack.base_url}/metrics", timeout=10.0)
            assert scraped.status_code == 200
            gateway = samples(scraped.text)
            assert "/metrics" not in http.get("/v1/openapi.json").json()["paths"]
        core = samples(httpx.get(f"http://{metrics_addr}/metrics", timeout=10.0).text)

    assert value(gateway, "asg_http_requests_total", route="/v1/tasks/{task_id}", code="404") == 1
    assert value(gateway, "asg_http_requests_total", route="/v1/tasks", method="POST") == 1
    assert not any(
        "tsk_doesnotexist" in labels.get("route", "") for labels, _ in gateway["asg_http_requests_total"]
    )
    assert value(gateway, "asg_http_request_seconds_count", route="/v1/tasks", method="POST") == 1
    assert value(core, "asg_tasks", status="pending") >= 1
    assert value(core, "asg_grpc_calls_total", method="/asg.v1.TaskService/SubmitTasks", code="OK") == 1
    assert value(core, "asg_connected_workers") == 0
    assert value(core, "asg_settlement_queue_age_seconds") == 0  # nothing decided, nothing to pay
    # Every store call is timed, the one that stored the task among them.
    assert value(core, "asg_store_seconds_count", method="submit") == 1
    assert value(core, "asg_store_seconds_bucket", method="submit", le="+Inf") == 1
    # A method nobody called adds no series.
    assert not [labels for labels, _ in core["asg_store_seconds_count"] if labels["method"] == "rotate_key"]
    # Every metric the sample dashboard draws is one this stack exports.
    exported = {re.sub(r"_(bucket|count|sum)$", "", name) for name in (*gateway, *core)}
    assert dashboard_metrics() and dashboard_metrics() <= exported, dashboard_metrics() - exported


def test_core_metrics_follow_a_task_from_labels_to_the_settlement_queue(tmp_path: Path) -> None:
    """Three simulated workers decide the task; a settlement window of an hour keeps it waiting
    for its payout, so the queue's age grows from the moment it was decided."""
    metrics_addr = free_addr()
    with make_stack(tmp_path, ASG_METRICS_ADDR=metrics_addr, ASG_SETTLE_WINDOW="3600") as stack:
        stack.start_workers(3, "--task-types", "image_classification")
        key = register(stack.base_url)["api_key"]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        ) as http:
            submitted_at = time.time()  # before the decision
            task_id = http.post("/v1/tasks", json=TASK).json()["task_id"]
            deadline = time.monotonic() + 60
            while (task := http.get(f"/v1/tasks/{task_id}").json())["status"] != "verified":
                assert time.monotonic() < deadline, task
                time.sleep(0.2)
            result = http.get(f"/v1/tasks/{task_id}/result").json()
        time.sleep(1.0)
        core = samples(httpx.get(f"http://{metrics_addr}/metrics", timeout=10.0).text)
        scraped_at = time.time()

    assert value(core, "asg_connected_workers") == 3
    assert value(core, "asg_labels_total") == result["worker_count"]
    assert value(core, "asg_decisions_total", outcome="verified") == 1
    assert value(core, "asg_tasks", status="verified") == 1
    age = value(core, "asg_settlement_queue_age_seconds")
    assert 1.0 <= age <= scraped_at - submitted_at, age
    assert value(core, "asg_store_seconds_count", method="record_labeling") >= 1
    assert value(core, "asg_store_seconds_count", method="settleable_tasks") >= 1


@pytest.fixture
def taken() -> Iterator[str]:
    """An address something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        host, port = sock.getsockname()
        yield f"{host}:{port}"


def run(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASG_")}
    return subprocess.run(
        [str(BIN / command), *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_a_taken_metrics_address_exits_2_naming_the_setting(tmp_path: Path, taken: str) -> None:
    done = run(
        "asg-server",
        {"ASG_DATA_DIR": str(tmp_path), "ASG_GRPC_ADDR": free_addr(), "ASG_METRICS_ADDR": taken},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"asg-server: ASG_METRICS_ADDR={taken}: cannot listen there (Address already in use)"
    )


def test_a_taken_grpc_address_exits_2_naming_the_setting(tmp_path: Path, taken: str) -> None:
    done = run("asg-server", {"ASG_DATA_DIR": str(tmp_path), "ASG_GRPC_ADDR": taken})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"asg-server: ASG_GRPC_ADDR / --grpc {taken}: cannot listen there"
    )


def test_a_taken_gateway_address_exits_2_naming_the_setting(taken: str) -> None:
    """The gateway's /metrics is served on its HTTP address, so that is the one to check."""
    done = run("asg-gateway", {"ASG_HTTP_ADDR": taken})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"asg-gateway: ASG_HTTP_ADDR / --http {taken}: cannot listen there (Address already in use)"
    )
