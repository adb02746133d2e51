"""The labels-per-second limit end to end: simulated agents labeling faster than the core's
per-worker bucket are cut off with RESOURCE_EXHAUSTED and `retry-after`, wait that long before
their next stream, and every task is still decided: nothing acknowledged is lost, nothing stuck."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from tests.conftest import make_stack, register
from tests.gateway.bodies import TASK

DECIDED = ("verified", "settled")


def test_agents_over_the_label_rate_back_off_as_told_and_every_task_is_decided(tmp_path: Path) -> None:
    with make_stack(tmp_path, ASG_WORKER_LABEL_RATE="5", ASG_WORKER_LABEL_BURST="5") as stack:
        key = register(stack.base_url)["api_key"]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            task = {**TASK, "consensus_threshold": 2}
            reply = http.post("/v1/tasks/batch", json={"tasks": [task] * 30})
            assert reply.status_code == 202, reply.text
            task_ids = reply.json()["task_ids"]
            stack.start_workers(3)
            deadline = time.monotonic() + 90
            while True:
                statuses = [http.get(f"/v1/tasks/{t}").json()["status"] for t in task_ids]
                if all(s in DECIDED for s in statuses) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    assert all(s in DECIDED for s in statuses), statuses
    cut_off = []
    for log in (tmp_path / "logs").glob("worker-*.log"):
        for line in log.read_text().splitlines():
            if "RESOURCE_EXHAUSTED" in line and "reconnecting" in line:
                cut_off.append(line)
    assert cut_off, "no agent was cut off: the limit was not reached"
    for line in cut_off:
        record = json.loads(line)
        told = int(re.search(r"retry after (\d+) s", record["error"]).group(1))  # type: ignore[union-attr]
        assert record["retry_in_s"] >= told >= 1, line
