"""A core on Aerospike hands its labeling flushes and group commits to the store's threads
(asg_grpc/store/offload.py) and still decides every task exactly as on the loop: every acked
label stored, every task decided by its threshold, each flush after the one before."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from asg_grpc.server import Core
from asg_grpc.store.aerospike import AerospikeStore, AerospikeUrl
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc
from tests.core.labeling.conftest import CoreHarness, settings_for

pytestmark = pytest.mark.asyncio

TASKS = 12


def _url(url: AerospikeUrl) -> str:
    hosts = ",".join(f"{host}:{port}" for host, port in url.hosts)
    return f"aerospike://{hosts}/{url.namespace}?set_prefix={url.set_prefix}"


async def test_labels_flushed_off_the_loop_are_all_stored_and_decide_each_task_once(
    fresh_aerospike_url: AerospikeUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, set[str]] = {"record_labeling": set(), "submit": set()}

    def seen(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: AerospikeStore, *args: Any, **kwargs: Any) -> Any:
            threads[name].add(threading.current_thread().name)
            return real(self, *args, **kwargs)  # the real write: this only notes the thread

        return call

    for name in threads:
        monkeypatch.setattr(AerospikeStore, name, seen(name, getattr(AerospikeStore, name)))

    core = Core(settings_for(tmp_path, store=_url(fresh_aerospike_url), rate_limit=False))
    await core.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{core.port}")
    harness = CoreHarness(core, channel)
    try:
        reply = await billing_pb2_grpc.BillingServiceStub(channel).RegisterCustomer(
            billing_pb2.RegisterCustomerRequest(name="Off loop", email="offloop@example.com")
        )
        harness.api_key = reply.api_key
        task_ids = list(await asyncio.gather(*(harness.submit(threshold=3) for _ in range(TASKS))))
        agents = [await harness.agent(max_in_flight=TASKS) for _ in range(3)]
        # Each agent labels every task as it is offered, all at once: labels keep arriving
        # while earlier flushes are on the store's threads.
        for agent in agents:
            assignments = await agent.assignments(TASKS)
            await asyncio.gather(*(agent.label(a.task_id, "cat") for a in assignments))
        for agent in agents:
            await agent.read_until(lambda a: len(a.acked) == TASKS, timeout=30)
        results = [await harness.wait_decided(task_id) for task_id in task_ids]
    finally:
        for agent in harness.agents:
            await agent.close()
        await channel.close()
        await core.stop()

    assert all(r.consensus_label == "cat" and r.worker_count == len(r.labels) == 3 for r in results)
    assert sorted(a.acked[i] for a in agents for i in range(TASKS)) == sorted(task_ids * 3)
    main = threading.main_thread().name
    assert threads["record_labeling"] and main not in threads["record_labeling"]
    assert threads["submit"] and main not in threads["submit"]
