"""Payment notices on the Work stream: `Dispatcher.notify_payments` against real streams."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest

from asg_grpc.dispatch.dispatcher import Dispatcher
from asg_grpc.dispatch.outbox import MAX_PENDING_PAYMENTS, Outbox
from asg_grpc.dispatch.payments import MAX_TASK_IDS, WorkerPayment
from asg_grpc.services.labeling import PAYMENTS_PER_MESSAGE
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc
from tests.core.labeling.conftest import WAIT, Agent, CoreHarness

SETTLED_AT = 1_795_371_497.25


def txid(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def payment(worker_id: str, n: int = 1, sats: int = 600, tasks: int = 2) -> WorkerPayment:
    return WorkerPayment(
        worker_id=worker_id,
        txid=txid(n),
        vout=n % 7,
        sats=sats,
        task_ids=tuple(f"tsk_{n}_{i}" for i in range(tasks)),
        settled_at=SETTLED_AT,
    )


class PaidAgent(Agent):
    """The harness's scripted agent, also keeping the payments and how they were grouped."""

    def __init__(self, stub: labeling_pb2_grpc.LabelingServiceStub, token: str) -> None:
        super().__init__(stub, token)
        self.payments: list[labeling_pb2.Payment] = []
        self.payment_messages = 0

    async def _pump(self) -> None:
        while (message := await self.call.read()) is not grpc.aio.EOF:
            kind = message.WhichOneof("kind")
            if kind == "payments":
                self.payments.extend(message.payments.items)
                self.payment_messages += 1
            elif kind == "assignments":
                self.assigned.extend(message.assignments.items)
            self._changed.set()

    async def paid(self, count: int, timeout: float = WAIT) -> None:
        """Wait until `count` payments have arrived."""
        await self.read_until(lambda _: len(self.payments) >= count, timeout)

    @property
    def worker_id(self) -> str:
        assert self.welcome is not None
        return self.welcome.worker_id


async def connect(harness: CoreHarness, token: str | None = None) -> PaidAgent:
    agent = PaidAgent(harness.labeling, token or await harness.register_worker())
    await agent.hello()
    harness.agents.append(agent)
    return agent


def dispatcher(harness: CoreHarness) -> Dispatcher:
    assert harness.core.dispatcher is not None
    return harness.core.dispatcher


@pytest.mark.asyncio
async def test_a_connected_worker_receives_its_payment(harness: CoreHarness) -> None:
    agent = await connect(harness)
    sent = payment(agent.worker_id, n=3, sats=600, tasks=2)
    assert dispatcher(harness).notify_payments([sent]) == 1
    await agent.paid(1)
    got = agent.payments[0]
    assert (got.txid, got.vout, got.sats) == (sent.txid, 3, 600)
    assert list(got.task_ids) == ["tsk_3_0", "tsk_3_1"] and got.task_count == 2
    assert got.settled_at.ToMicroseconds() == 1_795_371_497_250_000


@pytest.mark.asyncio
async def test_a_worker_not_connected_is_skipped_without_error(harness: CoreHarness) -> None:
    present = await connect(harness)
    gone = await connect(harness)
    gone_id = gone.worker_id
    await gone.close()

    async def gone_is_disconnected() -> None:
        while dispatcher(harness).notify_payments([payment(gone_id, n=0)]) != 0:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(gone_is_disconnected(), 5)
    batch = [payment("wkr_never_connected", n=1), payment(gone_id, n=2), payment(present.worker_id, n=3)]
    assert dispatcher(harness).notify_payments(batch) == 1
    await present.paid(1)
    assert present.payments[0].txid == txid(3)


@pytest.mark.asyncio
async def test_several_workers_get_only_their_own(harness: CoreHarness) -> None:
    agents = [await connect(harness) for _ in range(3)]
    batch = [
        payment(agent.worker_id, n=10 * i + k, sats=100 * (i + 1))
        for k in range(2)
        for i, agent in enumerate(agents)
    ]
    assert dispatcher(harness).notify_payments(batch) == 6
    for agent in agents:
        await agent.paid(2)
    await asyncio.sleep(0.1)  # nothing more arrives
    for i, agent in enumerate(agents):
        assert [p.txid for p in agent.payments] == [txid(10 * i), txid(10 * i + 1)]
        assert {p.sats for p in agent.payments} == {100 * (i + 1)}


@pytest.mark.asyncio
async def test_every_open_stream_of_a_worker_gets_the_payment(harness: CoreHarness) -> None:
    token = await harness.register_worker()
    first, second = await connect(harness, token), await connect(harness, token)
    assert first.worker_id == second.worker_id
    assert dispatcher(harness).notify_payments([payment(first.worker_id)]) == 2
    for agent in (first, second):
        await agent.paid(1)


@pytest.mark.asyncio
async def test_a_payment_for_many_tasks_lists_the_first_ones_and_counts_all(harness: CoreHarness) -> None:
    agent = await connect(harness)
    dispatcher(harness).notify_payments([payment(agent.worker_id, tasks=MAX_TASK_IDS + 500)])
    await agent.paid(1)
    got = agent.payments[0]
    assert len(got.task_ids) == MAX_TASK_IDS and got.task_count == MAX_TASK_IDS + 500


@pytest.mark.asyncio
async def test_thousands_of_payments_are_queued_at_once_and_sent_coalesced(harness: CoreHarness) -> None:
    agents = [await connect(harness) for _ in range(2)]
    batch = [payment(agents[n % 2].worker_id if n % 4 < 2 else f"wkr_away_{n}", n=n) for n in range(20_000)]
    assert dispatcher(harness).notify_payments(batch) == 10_000
    for i, agent in enumerate(agents):
        await agent.paid(5_000, timeout=20)
        assert [p.txid for p in agent.payments] == [txid(n) for n in range(20_000) if n % 4 == i]
        assert agent.payment_messages < 5_000 // PAYMENTS_PER_MESSAGE * 2, "one message per payment"


@pytest.mark.asyncio
async def test_the_stream_goes_on_after_payments(harness: CoreHarness) -> None:
    agent = await connect(harness)
    dispatcher(harness).notify_payments([payment(agent.worker_id)])
    task_id = await harness.submit(threshold=2)
    assert [a.task_id for a in await agent.assignments(1)] == [task_id]
    assert len(agent.payments) == 1


def test_a_stream_that_does_not_read_drops_notices_past_the_cap() -> None:
    outbox = Outbox()
    notice = payment("wkr_slow")
    assert all(outbox.pay(notice) for _ in range(MAX_PENDING_PAYMENTS))
    assert outbox.pay(notice) is False
    outbox.close()
    assert Outbox().pay(notice) and not outbox.pay(notice)


@pytest.mark.parametrize(
    "change",
    [
        {"txid": "ab" * 31},
        {"txid": "AB" * 32},
        {"vout": -1},
        {"vout": 2**32},
        {"sats": -5},
        {"sats": 2**64},
        {"settled_at": float("nan")},
        {"task_ids": "tsk_1"},
    ],
)
@pytest.mark.asyncio
async def test_a_payment_with_an_impossible_value_is_skipped_and_the_rest_sent(
    harness: CoreHarness, change: dict[str, object]
) -> None:
    agent = await connect(harness)
    fields: dict[str, object] = dict(
        worker_id=agent.worker_id, txid=txid(1), vout=0, sats=1, task_ids=(), settled_at=0.0
    )
    fields.update(change)
    bad = WorkerPayment(**fields)  # type: ignore[arg-type]
    assert dispatcher(harness).notify_payments([bad, payment(agent.worker_id, n=2)]) == 1
    await agent.paid(1)
    await asyncio.sleep(0.1)
    assert [p.txid for p in agent.payments] == [txid(2)]
