"""The ceiling for a single submit: the least work our architecture can do per request.

Two processes, as in the real stack: a bare grpc.aio server that inserts one SQLite row per call
(WAL, one commit per request, the stack's `synchronous` level), and a bare FastAPI app on uvicorn
(uvloop, httptools, no access log, no middleware) whose one POST endpoint reads the body and makes
that one gRPC call. No protobuf, validation, auth or JSON parsing: whatever the real stack reaches
is measured against this, so the ratio shows what our own code costs.

    python bench/_ceiling.py grpc --addr 127.0.0.1:PORT --db FILE [--synchronous NORMAL]
    python bench/_ceiling.py http --addr 127.0.0.1:PORT --core 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import uvicorn
import uvloop
from fastapi import FastAPI, Request
from starlette.responses import Response

SERVICE = "ceiling.Ceiling"
METHOD = f"/{SERVICE}/Insert"


async def serve_grpc(addr: str, db_path: Path, synchronous: str) -> None:
    """Insert the request bytes as one row, commit, reply with the row id (raw bytes, no proto)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body BLOB, at REAL)")

    async def insert(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # Autocommit: one INSERT is one transaction, committed before we reply.
        cursor = db.execute("INSERT INTO rows (body, at) VALUES (?, ?)", (request, time.time()))
        return f'{{"id":{cursor.lastrowid}}}'.encode()

    # Same options as the core, so the comparison is of the code, not of the transport.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Insert": grpc.unary_unary_rpc_method_handler(insert)}
            ),
        )
    )
    if not server.add_insecure_port(addr):
        raise OSError(f"cannot listen on {addr}")
    await server.start()
    await server.wait_for_termination()


def http_app(core_addr: str) -> FastAPI:
    """One POST endpoint: read the body, one gRPC call, the reply's bytes as the response."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(core_addr)
        app.state.insert = channel.unary_unary(METHOD)
        yield
        await channel.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/tasks")
    async def submit(request: Request) -> Response:
        reply = await request.app.state.insert(await request.body(), timeout=10.0)
        return Response(reply, status_code=202, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    grpc_parser = sub.add_parser("grpc", help="the bare gRPC server that inserts one row per call")
    grpc_parser.add_argument("--addr", required=True)
    grpc_parser.add_argument("--db", required=True, type=Path)
    grpc_parser.add_argument("--synchronous", default="NORMAL")
    http_parser = sub.add_parser("http", help="the bare FastAPI app that calls it")
    http_parser.add_argument("--addr", required=True)
    http_parser.add_argument("--core", required=True)
    args = parser.parse_args()
    if args.role == "grpc":
        uvloop.run(serve_grpc(args.addr, args.db, args.synchronous))
    else:
        host, _, port = args.addr.rpartition(":")
        uvicorn.run(
            http_app(args.core),
            host=host,
            port=int(port),
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
        )


if __name__ == "__main__":
    main()
