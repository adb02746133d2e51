"""LabelingService over a real gRPC channel: registration, dispatch, leases, refusals."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from asg_grpc.v1 import common_pb2, labeling_pb2, tasks_pb2
from tests.core.labeling.conftest import OPERATOR, CoreHarness, address, stored_options

pytestmark = pytest.mark.asyncio


async def test_register_worker_refuses_a_wrong_operator_token(harness: CoreHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.labeling.RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(name="w", payout_address=address("x")),
            metadata=[("authorization", "Bearer op_wrong")],
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("address_value", "field"),
    [
        ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMJ", "payout_address"),  # checksum broken
        ("not-an-address", "payout_address"),
        ("", "payout_address"),
    ],
)
async def test_register_worker_checks_the_payout_address(
    harness: CoreHarness, address_value: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.labeling.RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(name="w", payout_address=address_value),
            metadata=[("authorization", f"Bearer {OPERATOR}")],
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


async def test_register_worker_returns_a_token_shown_once(harness: CoreHarness) -> None:
    reply = await harness.labeling.RegisterWorker(
        labeling_pb2.RegisterWorkerRequest(name="w", payout_address="1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
        metadata=[("authorization", f"Bearer {OPERATOR}")],
    )
    assert reply.worker_id.startswith("wkr_") and reply.token.startswith("wk_")
    raw = harness.core.settings.sqlite_path.read_bytes()
    wal = harness.core.settings.sqlite_path.with_name("asg.sqlite3-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert reply.token.encode() not in raw


@pytest.mark.parametrize("token", ["wk_unknown", None])
async def test_work_stream_refuses_a_bad_or_missing_token(harness: CoreHarness, token: str | None) -> None:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    call = harness.labeling.Work(
        iter([labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello())]), metadata=metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_labels_and_decisions_are_counted_once_committed(harness: CoreHarness) -> None:
    """asg_labels and asg_decisions move by what was acked (the dispatcher counts per commit)."""
    labels_before = _sample("asg_labels_total")
    verified_before = _sample("asg_decisions_total", outcome="verified")
    task_id = await harness.submit(threshold=2)
    agents = [await harness.agent() for _ in range(2)]
    for agent in agents:
        assert [a.task_id for a in await agent.assignments(1)] == [task_id]
        await agent.label(task_id, "cat")
    for agent in agents:
        await agent.read_until(lambda a: task_id in a.acked)

    assert _sample("asg_labels_total") - labels_before == 2
    assert _sample("asg_decisions_total", outcome="verified") - verified_before == 1


@pytest.mark.parametrize("threshold", range(2, 11))
async def test_threshold_n_is_decided_by_n_distinct_workers(harness: CoreHarness, threshold: int) -> None:
    task_id = await harness.submit(threshold=threshold)
    agents = [await harness.agent() for _ in range(threshold + 1)]
    holders, extra = agents[:threshold], agents[threshold]
    for agent in holders:
        assert [a.task_id for a in await agent.assignments(1)] == [task_id]
    # Exactly N distinct workers hold the task; the extra one gets nothing.
    assert await extra.held_after() == 0
    agreeing = threshold // 2 + 1  # the smallest strict majority
    for i, agent in enumerate(holders):
        await agent.label(task_id, "cat" if i < agreeing else "dog")
    for agent in holders:
        await agent.read_until(lambda a: task_id in a.acked)
    result = await harness.wait_decided(task_id)
    assert result.status == common_pb2.TASK_STATUS_VERIFIED
    assert result.consensus_label == "cat"
    assert result.worker_count == threshold
    assert result.agreement_count == agreeing
    assert result.confidence == agreeing / threshold
    assert len({label.worker_id for label in result.labels}) == threshold


async def test_two_of_three_gives_the_documented_confidence(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=3)
    agents = [await harness.agent() for _ in range(3)]
    for agent, option in zip(agents, ["cat", "cat", "dog"], strict=True):
        await agent.assignments(1)
        await agent.label(task_id, option)
    result = await harness.wait_decided(task_id)
    assert result.confidence == 0.6666666666666666
    assert (result.worker_count, result.agreement_count) == (3, 2)


async def test_a_tie_asks_for_one_more_label(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    first, second = await harness.agent(), await harness.agent()
    for agent, option in ((first, "cat"), (second, "dog")):
        await agent.assignments(1)
        await agent.label(task_id, option)
        await agent.read_until(lambda a: task_id in a.acked)
    assert not (await harness.result(task_id)).decided
    third = await harness.agent()
    [assignment] = await third.assignments(1)
    assert assignment.task_id == task_id
    await third.label(task_id, "dog")
    result = await harness.wait_decided(task_id)
    assert (result.consensus_label, result.worker_count, result.agreement_count) == ("dog", 3, 2)


async def test_no_majority_at_twice_the_threshold_fails_the_task(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2, options=("a", "b", "c", "d"))
    for option in ("a", "b", "c", "d"):
        agent = await harness.agent()
        await agent.assignments(1)
        await agent.label(task_id, option)
        await agent.read_until(lambda a: task_id in a.acked)
    result = await harness.wait_decided(task_id)
    assert result.status == common_pb2.TASK_STATUS_FAILED
    assert result.failure_reason == "no_consensus"
    assert not result.HasField("consensus_label")
    late = await harness.agent()
    assert await late.held_after() == 0


async def test_refused_labels_leave_the_stream_open_and_count_nothing(harness: CoreHarness) -> None:
    held = await harness.submit(threshold=2)
    other = await harness.submit(threshold=2)
    agent = await harness.agent(max_in_flight=1)
    [assignment] = await agent.assignments(1)
    assert assignment.task_id == held
    await agent.label(other, "cat")  # not held
    await agent.label(held, "horse")  # not an option
    await agent.read_until(lambda a: len(a.errors) == 2)
    assert [e.code for e in agent.errors] == ["not_held", "invalid_option"]
    await agent.label(held, "cat")  # still held: accepted
    await agent.read_until(lambda a: held in a.acked)
    await agent.label(held, "dog")  # a second label by the same worker
    await agent.read_until(lambda a: len(a.errors) == 3)
    assert agent.errors[2].code == "already_labeled"
    assert stored_options(harness, held) == ["cat"]


async def test_a_worker_holds_at_most_max_in_flight(harness: CoreHarness) -> None:
    for _ in range(5):
        await harness.submit(threshold=2)
    agent = await harness.agent(max_in_flight=2)
    await agent.assignments(2)
    assert await agent.held_after() == 2
    assert agent.welcome is not None and agent.welcome.max_in_flight == 2


async def test_oldest_tasks_are_dispatched_first(harness: CoreHarness) -> None:
    ids = [await harness.submit(threshold=2) for _ in range(4)]
    agent = await harness.agent(max_in_flight=4)
    assert [a.task_id for a in await agent.assignments(4)] == ids


async def test_a_skipped_task_is_not_offered_again_to_that_worker(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    agent = await harness.agent()
    await agent.assignments(1)
    await agent.skip(task_id)
    assert await agent.held_after() == 1
    other = await harness.agent()
    assert (await other.assignments(1))[0].task_id == task_id


async def test_a_closed_stream_gives_its_slots_to_other_agents(harness: CoreHarness) -> None:
    ids = [await harness.submit(threshold=2) for _ in range(3)]
    leaving = await harness.agent(max_in_flight=3)
    await leaving.assignments(3)
    staying = await harness.agent(max_in_flight=3)
    await staying.assignments(3)  # each task has a second slot
    third = await harness.agent(max_in_flight=3)
    assert await third.held_after() == 0
    await leaving.close()
    assert sorted(a.task_id for a in await third.assignments(3)) == sorted(ids)


@pytest.mark.core_settings(lease_seconds=0.5)
async def test_an_expired_lease_frees_the_slot_and_refuses_the_late_label(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    slow = await harness.agent()
    await slow.assignments(1)
    await slow.read_until(lambda a: any(e.code == "lease_expired" for e in a.errors), timeout=3)
    await slow.label(task_id, "cat")
    await slow.read_until(lambda a: len(a.errors) == 2)
    assert slow.errors[1].code == "not_held"
    fresh = await harness.agent()
    assert (await fresh.assignments(1))[0].task_id == task_id


@pytest.mark.core_settings(lease_seconds=0.5)
async def test_a_lapsed_lease_goes_back_to_pending_and_to_the_same_worker_later(harness: CoreHarness) -> None:
    # As many workers as the threshold: if a lapse kept its worker away for good, the task
    # could never be decided.
    task_id = await harness.submit(threshold=2)
    first = await harness.agent()
    await first.assignments(1)
    await first.read_until(lambda a: any(e.code == "lease_expired" for e in a.errors), timeout=3)
    get = tasks_pb2.GetTaskRequest(task_id=task_id)
    for _ in range(20):  # slowly: the sandbox key's rate limit applies
        task = await harness.tasks.GetTask(get, metadata=harness.auth)
        if task.status == common_pb2.TASK_STATUS_PENDING:
            break
        await asyncio.sleep(0.1)
    assert task.status == common_pb2.TASK_STATUS_PENDING  # nobody holds it, nobody labeled it
    second = await harness.agent()
    await second.assignments(1)
    await second.label(task_id, "cat")
    # After its cool-down (one lease period) the first worker is offered the task again.
    again = await first.assignments(2)
    assert again[1].task_id == task_id
    await first.label(task_id, "cat")
    assert (await harness.wait_decided(task_id)).consensus_label == "cat"


@pytest.mark.core_settings(lease_seconds=1.0)
async def test_time_the_core_did_not_run_does_not_count_against_a_lease(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    agent = await harness.agent()
    await agent.assignments(1)
    await agent.label(task_id, "cat")  # queued; sent once the loop runs again
    time.sleep(2.5)  # the core's event loop (this one) stalls past the lease, as under SIGSTOP
    await agent.read_until(lambda a: task_id in a.acked or bool(a.errors))
    assert agent.errors == [] and agent.acked == [task_id]


async def test_first_claim_moves_the_task_to_in_progress(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    get = tasks_pb2.GetTaskRequest(task_id=task_id)
    assert (await harness.tasks.GetTask(get, metadata=harness.auth)).status == common_pb2.TASK_STATUS_PENDING
    agent = await harness.agent()
    await agent.assignments(1)
    for _ in range(50):
        task = await harness.tasks.GetTask(get, metadata=harness.auth)
        if task.status == common_pb2.TASK_STATUS_IN_PROGRESS:
            break
        await asyncio.sleep(0.02)
    assert task.status == common_pb2.TASK_STATUS_IN_PROGRESS


async def test_an_acked_label_is_already_in_the_store(harness: CoreHarness) -> None:
    task_id = await harness.submit(threshold=2)
    agent = await harness.agent()
    await agent.assignments(1)
    await agent.label(task_id, "dog")
    await agent.read_until(lambda a: task_id in a.acked)
    # Another connection to the same file sees it: the ack came after the commit.
    assert stored_options(harness, task_id) == ["dog"]


async def test_agents_only_get_the_task_types_they_asked_for(harness: CoreHarness) -> None:
    text = await harness.submit(threshold=2, task_type="text_classification")
    await harness.submit(threshold=2, task_type="image_classification")
    agent = await harness.agent(max_in_flight=5, task_types=["text_classification"])
    assert [a.task_id for a in await agent.assignments(1)] == [text]
    assert await agent.held_after() == 1


async def test_a_task_behind_many_that_nobody_can_take_still_reaches_its_worker(harness: CoreHarness) -> None:
    # More image tasks than the dispatcher keeps ready without demand, then one text task.
    for _ in range(2):
        await harness.tasks.SubmitBatch(
            tasks_pb2.SubmitBatchRequest(
                tasks=[
                    tasks_pb2.TaskInput(
                        type="image_classification",
                        data_url=f"https://example.com/{i}.jpg",
                        label_spec=common_pb2.LabelSpec(question="Animal?", options=["cat", "dog"]),
                    )
                    for i in range(1000)
                ]
            ),
            metadata=harness.auth,
        )
    text = await harness.submit(threshold=2, task_type="text_classification")
    agent = await harness.agent(task_types=["text_classification"])
    assert [a.task_id for a in await agent.assignments(1)] == [text]

