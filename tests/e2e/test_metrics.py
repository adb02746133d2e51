"""/metrics on the gateway and the core, scraped with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from asg_grpc.devstack import free_addr
from tests.conftest import make_stack, register


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
            task = {
                "type": "image_classification",
                "data_url": "https://cdn.example.com/metrics/1.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            }
            reply = http.post("/v1/tasks", json=task)
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
