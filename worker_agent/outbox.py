"""Messages waiting for the stream. Labels that pile up leave as one `Labels` message.

Batching is what makes a fast labeler fast: while one write is on the wire, every label that
becomes ready joins the next message instead of costing a message (and a core transaction)
each.
"""

from __future__ import annotations

import asyncio
from collections import deque

from asg_grpc.v1 import labeling_pb2

MAX_BATCH = 256  # a Labels message never holds more; the contract's max_in_flight bound


class Outbox:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._items: deque[labeling_pb2.WorkerMessage | labeling_pb2.Label] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._max_batch = max_batch

    def put(self, message: labeling_pb2.WorkerMessage) -> None:
        self._append(message)

    def put_label(self, task_id: str, option: str, votes: int = 0, agreement: float = 0.0) -> None:
        self._append(labeling_pb2.Label(task_id=task_id, option=option, votes=votes, agreement=agreement))

    def close(self) -> None:
        """No more puts; `take` returns what is left, then None."""
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    async def take(self) -> list[labeling_pb2.WorkerMessage] | None:
        """Everything waiting, labels merged; waits while empty; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        out: list[labeling_pb2.WorkerMessage] = []
        labels: list[labeling_pb2.Label] = []
        heartbeat = False
        while self._items:
            item = self._items.popleft()
            if isinstance(item, labeling_pb2.Label):
                if not labels:  # the merged message keeps the place of its first label
                    out.append(labeling_pb2.WorkerMessage(labels=labeling_pb2.Labels()))
                labels.append(item)
            elif item.WhichOneof("kind") == "heartbeat":
                if not heartbeat:  # a backlog of heartbeats says nothing more than one
                    heartbeat = True
                    out.append(item)
            else:
                out.append(item)
        return _split_labels(out, labels, self._max_batch)

    def _append(self, item: labeling_pb2.WorkerMessage | labeling_pb2.Label) -> None:
        if self._closed:
            raise RuntimeError("outbox is closed")
        self._items.append(item)
        self._ready.set()


def _split_labels(
    out: list[labeling_pb2.WorkerMessage], labels: list[labeling_pb2.Label], size: int
) -> list[labeling_pb2.WorkerMessage]:
    if not labels:
        return out
    at = next(i for i, m in enumerate(out) if m.WhichOneof("kind") == "labels")
    chunks = [
        labeling_pb2.WorkerMessage(labels=labeling_pb2.Labels(items=labels[i : i + size]))
        for i in range(0, len(labels), size)
    ]
    return out[:at] + chunks + out[at + 1 :]
