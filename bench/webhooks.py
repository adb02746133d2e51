"""Webhook delivery throughput: deliveries per second to a local receiver.

Queues `--deliveries` deliveries (1 KiB payloads, one webhook) in a real SQLite store in a
temporary dir, then runs the real delivery worker (`asg_grpc.webhooks.worker.WebhookWorker`,
its own uvloop event loop, as in the core) against a receiver in another process on 127.0.0.1
(plain HTTP/1.1 with keep-alive, answering 200 at once), and times until every delivery is
recorded `delivered` in the store (another connection counts them). Signing, POSTing, and the
batched outcome writes are all in the figure; fan-out (rendering events) is not, and neither is
TLS.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/webhooks.py [--deliveries 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from asg_grpc.domain.webhooks import EVENT_TYPES, WebhookSpec
from asg_grpc.sealing import Sealer, seal_webhook_secret
from asg_grpc.settings import Settings
from asg_grpc.store.open import open_store, sqlite_url
from asg_grpc.store.sqlite import SQLiteStore
from asg_grpc.store.webhook_records import NewDelivery
from asg_grpc.webhooks.worker import WebhookWorker

TARGET = 2000.0  # deliveries per second
TIME_LIMIT = 120.0
SEALER = Sealer(os.urandom(32))
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the receiver (run as `bench/webhooks.py --receiver PORT`) ----------------------------------


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Minimal HTTP/1.1: read headers and a Content-Length body, answer 200, keep the connection."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            writer.write(RESPONSE)
            await writer.drain()
    writer.close()


async def _receive(sock: socket.socket) -> None:
    server = await asyncio.start_server(_handle, sock=sock, backlog=1024)
    async with server:
        await server.serve_forever()


def receiver_main(fd: int) -> None:
    uvloop.run(_receive(socket.socket(fileno=fd)))


# --- the measurement -----------------------------------------------------------------------------


def queue(store: SQLiteStore, url: str, count: int) -> str:
    now = time.time()
    spec = WebhookSpec(url, "whsec_bench_secret", EVENT_TYPES)
    hook = store.create_webhook(
        "whk_bench", "cus_bench", spec, seal_webhook_secret(SEALER, "whk_bench", spec.secret), now
    )
    payload = json.dumps({"id": "evt_bench", "type": "task.verified", "data": {"pad": "x" * 1000}}).encode()
    for start in range(0, count, 10_000):
        store.fan_out(
            [],
            [
                NewDelivery(f"dlv_bench_{i:08d}", hook.webhook_id, f"evt_{i}", "task.verified", payload)
                for i in range(start, min(count, start + 10_000))
            ],
            now,
        )
    return hook.webhook_id


def delivered(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)) as db:
        count: int = db.execute("SELECT count(*) FROM deliveries WHERE state = 'delivered'").fetchone()[0]
    return count


async def run_worker(store: SQLiteStore, settings: Settings, count: int) -> tuple[float, int]:
    """Seconds until `count` deliveries are delivered (or the time limit), and how many were."""
    worker = WebhookWorker(store, settings, SEALER)
    started = time.perf_counter()
    await worker.start()
    done = 0
    try:
        while time.perf_counter() - started < TIME_LIMIT:
            await asyncio.sleep(0.05)
            done = delivered(store.path)
            if done >= count:
                break
    finally:
        elapsed = time.perf_counter() - started
        await worker.stop()
    return elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)  # internal: serve on this fd
    args = parser.parse_args()
    if args.receiver is not None:
        receiver_main(args.receiver)
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--receiver", str(sock.fileno())], pass_fds=(sock.fileno(),)
    )
    sock.close()
    try:
        with tempfile.TemporaryDirectory(prefix="asg-bench-webhooks-") as tmp:
            # The figures below read the SQLite file itself, so this bench measures SQLite.
            store = open_store(sqlite_url(Path(tmp) / "asg.sqlite3"))
            assert isinstance(store, SQLiteStore)
            try:
                progress(f"queueing {args.deliveries} deliveries")
                queue(store, f"http://127.0.0.1:{port}/hook", args.deliveries)
                settings = Settings(allow_private_urls=True, webhook_concurrency=args.concurrency)
                progress(f"delivering with concurrency {args.concurrency}")
                elapsed, done = uvloop.run(run_worker(store, settings, args.deliveries))
            finally:
                store.close()
    finally:
        receiver.terminate()
        receiver.wait()
    rate = done / elapsed if elapsed else 0.0
    print(
        json.dumps(
            {
                "bench": "webhooks",
                "deliveries": args.deliveries,
                "delivered": done,
                "concurrency": args.concurrency,
                "seconds": round(elapsed, 3),
                "deliveries_per_second": round(rate, 1),
                "target_per_second": TARGET,
                "meets_target": rate >= TARGET and done == args.deliveries,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
