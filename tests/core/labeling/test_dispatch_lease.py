"""One dispatcher per store, and label commits that survive a busy database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest

from asg_grpc.dispatch import lease
from asg_grpc.dispatch.lease import DispatchTaken
from asg_grpc.server import Core
from asg_grpc.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.core.labeling.conftest import CoreHarness, settings_for, stored_options

pytestmark = pytest.mark.asyncio


async def test_a_second_dispatching_core_on_the_same_store_refuses_to_start(harness: CoreHarness) -> None:
    second = Core(settings_for(harness.core.settings.data_dir))
    with pytest.raises(DispatchTaken, match="ASG_DISPATCH=off"):
        await second.start()
    second.store.close()


async def test_a_core_with_dispatch_off_serves_tasks_but_not_labeling(harness: CoreHarness) -> None:
    other = Core(settings_for(harness.core.settings.data_dir, dispatch=False))
    await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            task = await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id=await harness.submit()), metadata=harness.auth
            )
            assert task.task_id
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await labeling_pb2_grpc.LabelingServiceStub(channel).RegisterWorker(
                    labeling_pb2.RegisterWorkerRequest(name="w")
                )
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await other.stop()


async def test_the_lease_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    core = Core(settings_for(tmp_path))
    # A lease left behind by a process of this host that no longer exists (pid 2**22 + 1 is
    # above Linux's pid_max default, so nothing runs with it).
    assert core.store.take_dispatch_lease(f"{lease.socket.gethostname()}:4194305:dead", 1e12, None)
    await core.start()
    await core.stop()


async def test_a_core_whose_lease_is_taken_away_stops(
    harness: CoreHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "HEARTBEAT", 0.05)
    core = Core(settings_for(harness.core.settings.data_dir / "other"))
    await core.start()
    try:
        current = core.store.dispatch_lease()
        assert core.store.take_dispatch_lease("elsewhere:1:x", 0.0, current)
        await asyncio.wait_for(core.failed.wait(), 5)
    finally:
        await core.stop()


@pytest.mark.core_settings(sqlite_busy_timeout=0.05)
async def test_labels_are_acked_once_a_locked_database_frees_up(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    agent = await harness.agent()
    await agent.assignments(1)
    blocker = sqlite3.connect(harness.core.settings.sqlite_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        await agent.label(task_id, "cat")
        await asyncio.sleep(0.5)  # commits fail meanwhile; nothing may be acked yet
        assert agent.acked == []
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await agent.read_until(lambda a: task_id in a.acked)
    assert stored_options(harness, task_id) == ["cat"]


async def test_a_task_submitted_through_another_core_reaches_an_idle_worker(harness: CoreHarness) -> None:
    # More image tasks than are kept ready without demand, and an idle text-only worker.
    for start in (0, 1000):
        await harness.tasks.SubmitBatch(
            tasks_pb2.SubmitBatchRequest(tasks=[image_task(i) for i in range(start, start + 1000)]),
            metadata=harness.auth,
        )
    agent = await harness.agent(task_types=["text_classification"])
    assert await agent.held_after(0.6) == 0
    # The text task arrives through a core that does not dispatch: only the poll can see it.
    other = Core(settings_for(harness.core.settings.data_dir, dispatch=False))
    await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            reply = await tasks_pb2_grpc.TaskServiceStub(channel).SubmitTask(
                tasks_pb2.SubmitTaskRequest(task=image_task(0, "text_classification")), metadata=harness.auth
            )
    finally:
        await other.stop()
    assert [a.task_id for a in await agent.assignments(1)] == [reply.task.task_id]


@pytest.mark.core_settings(dispatch_window=20)
async def test_room_freed_in_a_full_window_loads_the_task_that_did_not_fit(harness: CoreHarness) -> None:
    await harness.tasks.SubmitBatch(
        tasks_pb2.SubmitBatchRequest(tasks=[image_task(i, threshold=2) for i in range(20)]),
        metadata=harness.auth,
    )
    text = await harness.submit(threshold=2, task_type="text_classification")
    reader = await harness.agent(task_types=["text_classification"])
    assert await reader.held_after(0.6) == 0  # the window holds only image tasks
    for _ in range(2):
        labeler = await harness.agent(max_in_flight=1, task_types=["image_classification"])
        [assignment] = await labeler.assignments(1)
        await labeler.label(assignment.task_id, "cat")
    assert [a.task_id for a in await reader.assignments(1)] == [text]


async def test_a_stopping_core_refuses_new_work_streams(harness: CoreHarness) -> None:
    assert harness.core.dispatcher is not None
    await harness.core.dispatcher.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.agent()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def image_task(n: int, task_type: str = "image_classification", threshold: int = 3) -> tasks_pb2.TaskInput:
    return tasks_pb2.TaskInput(
        type=task_type,
        data_url=f"https://example.com/{n}.jpg",
        label_spec=common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"]),
        consensus_threshold=threshold,
    )
