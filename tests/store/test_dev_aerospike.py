"""`asg dev` on Aerospike (`make run STORE=aerospike`): two cores and the gateway on the
namespace `ASG_STORE` names, an agent per core for each simulated worker, and the README
quickstart served unchanged (docs/storage.md, "Several cores on Aerospike")."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from asg_grpc.store.aerospike.connection import AerospikeUrl
from tests.conftest import register
from tests.e2e.test_labeling import (
    STEP2_BODY,
    asg_dev,
    assert_stopped_cleanly,
    command_name,
    final_result,
    settled,
    submit,
    wait_for,
)
from tests.store.test_two_cores import url_of

pytestmark = pytest.mark.slow


def test_asg_dev_on_aerospike_runs_two_cores_and_serves_the_quickstart(
    tmp_path: Path, fresh_aerospike_url: AerospikeUrl
) -> None:
    # Rate limit off: polling nine tasks at once outpaces the sandbox tier's limit.
    env = {"ASG_STORE": url_of(fresh_aerospike_url), "ASG_RATE_LIMIT": "off"}
    with asg_dev(tmp_path, workers=3, **env) as dev:
        names = sorted(command_name(pid) for pid in dev.children)
        # The challenge demo (docs/challenge.md) as on SQLite, plus a second core and an agent
        # per core for each of the 3 workers.
        expected = ["asg-challenge", "asg-gateway", *["asg-server"] * 2, *["asg-worker"] * 6]
        assert names == sorted([*expected, "asg_challenge.demo_site"]), names
        assert f"store      {url_of(fresh_aerospike_url)}" in dev.output()

        key = register(dev.base_url, "Demo")["api_key"]
        with httpx.Client(
            base_url=dev.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            # Nine consecutive task numbers span both halves of the 16 partitions: both cores dispatch.
            task_ids = [submit(http, STEP2_BODY) for _ in range(9)]
            for task_id in task_ids:
                final_result(http, task_id, 45)
                result = wait_for(f"{task_id} settled", lambda t=task_id: settled(http, t), 30)
                assert result["worker_count"] == 3
                assert result["confidence"] == result["agreement_count"] / result["worker_count"]
                assert result["settlement"]["total_cost_sats"] == 1000  # 3 labels × 300 + 100, seed 001
                assert len({label["worker_id"] for label in result["labels"]}) == 3

        assert_stopped_cleanly(dev, signal.SIGINT)
