"""A labeler inside the harness: it speaks the real Work stream (through the proxy, so it sees
every cut and stall) and remembers each label the core acknowledged, which the simulated
`asg-worker` processes do not report one by one. The campaign then checks that the store
holds every one of them exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import grpc

from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc

HEARTBEAT = 1.0


class Witness:
    def __init__(self, addr: str, token: str) -> None:
        self._addr = addr
        self._token = token
        self.sent: dict[str, str] = {}  # task_id → option, every label written to a stream
        self.acked: dict[str, str] = {}  # task_id → option, the ones the core acknowledged
        self.sessions = 0
        self.worker_id = ""
        self._loop = asyncio.new_event_loop()
        self._main: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-witness", daemon=True)

    def start(self) -> Witness:
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        def cancel() -> None:
            if self._main is not None:
                self._main.cancel()

        self._loop.call_soon_threadsafe(cancel)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        self._main = self._loop.create_task(self._forever())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._main)
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _forever(self) -> None:
        while True:
            with contextlib.suppress(grpc.RpcError):
                await self._session()
            await asyncio.sleep(0.3)

    async def _session(self) -> None:
        async with grpc.aio.insecure_channel(self._addr) as channel:
            stub = labeling_pb2_grpc.LabelingServiceStub(channel)
            call = stub.Work(metadata=(("authorization", f"Bearer {self._token}"),))
            outbox: asyncio.Queue[labeling_pb2.WorkerMessage] = asyncio.Queue()
            outbox.put_nowait(
                labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=4, agent="chaos-witness/1"))
            )

            async def write() -> None:
                while True:
                    await call.write(await outbox.get())

            async def heartbeats() -> None:
                while True:
                    await asyncio.sleep(HEARTBEAT)
                    outbox.put_nowait(labeling_pb2.WorkerMessage(heartbeat=labeling_pb2.Heartbeat()))

            helpers = [asyncio.create_task(write()), asyncio.create_task(heartbeats())]
            self.sessions += 1
            try:
                while (message := await call.read()) is not grpc.aio.EOF:
                    kind = message.WhichOneof("kind")
                    if kind == "welcome":
                        self.worker_id = message.welcome.worker_id
                    elif kind == "assignments":
                        items = []
                        for assignment in message.assignments.items:
                            option = assignment.label_spec.options[0]
                            self.sent[assignment.task_id] = option
                            items.append(labeling_pb2.Label(task_id=assignment.task_id, option=option))
                        outbox.put_nowait(labeling_pb2.WorkerMessage(labels=labeling_pb2.Labels(items=items)))
                    elif kind == "acks":
                        for ack in message.acks.items:
                            self.acked[ack.task_id] = self.sent[ack.task_id]
            finally:
                call.cancel()
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
