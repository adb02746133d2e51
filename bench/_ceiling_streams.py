"""The labeling ceiling: bare grpc.aio bidirectional streams, one SQLite row and one ack per message.

`serve PORT DB` runs the server: a generic bidi method (raw bytes, no protobuf), which for every
message inserts one row, commits, and writes the message back as its ack. `drive PORT SECONDS
WINDOW` runs one client stream keeping WINDOW messages in flight and prints the acks it got.
bench/labels.py starts one server and 8 drivers as separate processes, like 8 agents.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator

import grpc
import uvloop

METHOD = "/ceiling.Streams/Work"


async def serve(port: int, db_path: str) -> None:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS labels (id INTEGER PRIMARY KEY, body BLOB, at REAL)")

    async def work(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for message in requests:
            db.execute("INSERT INTO labels (body, at) VALUES (?, ?)", (message, time.time()))
            yield message

    handler = grpc.method_handlers_generic_handler(
        "ceiling.Streams", {"Work": grpc.stream_stream_rpc_method_handler(work)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def drive(port: int, seconds: float, window: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(METHOD)()
        payload = os.urandom(40)  # about a Label message: a task id and an option
        deadline = time.monotonic() + seconds
        for _ in range(window):
            await call.write(payload)
        acked = 0
        while time.monotonic() < deadline:
            await call.read()
            acked += 1
            await call.write(payload)
        await call.done_writing()
        print(acked, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        uvloop.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        uvloop.run(drive(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
