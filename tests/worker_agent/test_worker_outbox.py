"""The outbox: labels that pile up leave together; order and heartbeats stay sensible."""

from __future__ import annotations

import pytest

from asg_grpc.v1 import labeling_pb2
from worker_agent.outbox import Outbox

HEARTBEAT = labeling_pb2.WorkerMessage(heartbeat=labeling_pb2.Heartbeat())
DRAIN = labeling_pb2.WorkerMessage(drain=labeling_pb2.Drain())


def kinds(batch: list[labeling_pb2.WorkerMessage] | None) -> list[str]:
    assert batch is not None
    return [str(m.WhichOneof("kind")) for m in batch]


@pytest.mark.asyncio
async def test_ready_labels_merge_into_one_message_and_heartbeats_into_one() -> None:
    box = Outbox()
    box.put_label("t1", "cat")
    box.put(HEARTBEAT)
    box.put_label("t2", "dog")
    box.put(HEARTBEAT)
    box.put(labeling_pb2.WorkerMessage(skip=labeling_pb2.Skip(task_id="t3", reason="x")))
    box.put(DRAIN)
    batch = await box.take()
    assert kinds(batch) == ["labels", "heartbeat", "skip", "drain"]
    assert batch is not None
    assert [(label.task_id, label.option) for label in batch[0].labels.items] == [
        ("t1", "cat"),
        ("t2", "dog"),
    ]
    assert len(box) == 0


@pytest.mark.asyncio
async def test_a_large_backlog_is_split_at_the_batch_limit() -> None:
    box = Outbox(max_batch=3)
    for n in range(7):
        box.put_label(f"t{n}", "cat")
    batch = await box.take()
    assert batch is not None
    assert [len(m.labels.items) for m in batch] == [3, 3, 1]


@pytest.mark.asyncio
async def test_take_returns_none_once_closed_and_empty() -> None:
    box = Outbox()
    box.put(DRAIN)
    box.close()
    assert kinds(await box.take()) == ["drain"]
    assert await box.take() is None
    with pytest.raises(RuntimeError):
        box.put(DRAIN)


@pytest.mark.asyncio
async def test_a_crowd_label_carries_its_votes_and_agreement_on_the_wire() -> None:
    box = Outbox()
    box.put_label("t1", "cat", votes=3, agreement=0.6667)
    box.put_label("t2", "dog")
    batch = await box.take()
    assert batch is not None
    wire = labeling_pb2.WorkerMessage.FromString(batch[0].SerializeToString())
    assert [(x.option, x.votes, round(x.agreement, 4)) for x in wire.labels.items] == [
        ("cat", 3, 0.6667),
        ("dog", 0, 0.0),
    ]
