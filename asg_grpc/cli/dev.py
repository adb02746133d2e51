"""`asg dev`: the whole stack on the embedded defaults, as real processes, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from asg_grpc.cli import dev_challenge
from asg_grpc.cli.dev_aerospike import LocalNode, aerospike_url, ensure_node, start_second_core
from asg_grpc.devstack import Stack, StackError
from asg_grpc.settings import Settings, SettingsError, record_stack, recorded_stack

DEFAULT_WORKERS = 3
DEFAULT_HTTP = "127.0.0.1:8081"
DEFAULT_METRICS = "127.0.0.1:9464"  # the core's /metrics under `asg dev` (docs/operations.md)


def recorded_dir() -> Path | None:
    """The data dir of the recorded stack, if any: its HTTP address is reused only with it."""
    data_dir = recorded_stack(os.environ).get("data_dir")
    return Path(data_dir) if data_dir else None


def dev(args: argparse.Namespace) -> int:
    # Read (and checked) here, once, before any process starts; the processes read the same
    # environment, which the stack passes on. Development mode is on unless ASG_DEV_MODE says off.
    dev_env = {"ASG_DEV_MODE": os.environ.get("ASG_DEV_MODE") or "on"}
    settings = Settings.from_flags(args.data_dir, args.grpc, {**os.environ, **dev_env})
    workers = args.workers if args.workers is not None else _dev_workers(os.environ.get("ASG_DEV_WORKERS"))
    recorded = recorded_stack(os.environ) if settings.data_dir == recorded_dir() else {}
    stack = Stack(
        http_addr=args.http or os.environ.get("ASG_HTTP_ADDR") or recorded.get("http_addr") or DEFAULT_HTTP,
        grpc_addr=settings.grpc_addr,
        data_dir=settings.data_dir.resolve(),
        env={**dev_env, "ASG_METRICS_ADDR": settings.metrics_addr or DEFAULT_METRICS},
    )
    metrics_addr = stack.env["ASG_METRICS_ADDR"]
    challenge = dev_challenge.demo_settings(args, os.environ, stack.data_dir)
    stopping = False
    starting = True

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if starting:  # don't finish starting what is being stopped
            raise StackError(f"stopped by {signal.Signals(signum).name} while starting")

    # SIGHUP too: the children have their own sessions, so a closed terminal would orphan them.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    node: LocalNode | None = None
    try:
        node, cores = _start_cores(stack, settings)
        stack.wait_ready()
        # Like people: a second per label, right four times in five, so a newcomer sees a task
        # go pending → in_progress → verified, and a confidence below 1 now and then.
        stack.start_workers(workers, "--accuracy", "0.8", "--delay", "1", servers=cores)
        if challenge is not None:
            dev_challenge.start(stack, challenge)
        starting = False
        # So that `asg customer tier`, `asg worker register` and a second `asg dev` find this
        # stack from any directory (docs/cli.md, "Where the commands find the stack").
        try:
            record_stack(os.environ, stack.data_dir, stack.grpc_addr, stack.http_addr)
        except OSError as exc:  # a read-only home: the stack still runs, found by flags only
            print(f"asg dev: warning: could not record the stack: {exc}", file=sys.stderr)
        print(
            "ASG Refinery dev stack is up\n"
            f"  REST API   http://{stack.http_addr}/v1   (docs: http://{stack.http_addr}/v1/docs)\n"
            f"  gRPC core  {', '.join(cores)}\n"
            f"  store      {settings.store_url}\n"
            f"  metrics    http://{stack.http_addr}/metrics (gateway), http://{metrics_addr}/metrics (core)\n"
            f"  workers    {workers} simulated (asg-worker --labeler simulated --accuracy 0.8"
            f"{', one agent per core' if len(cores) > 1 else ''})\n"
            f"{challenge.banner() if challenge else ''}"
            f"  data       {stack.data_dir}\n"
            f"  dev mode   {_dev_mode_line(settings.dev_mode)}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping:
            stack.check_alive()
            time.sleep(0.2)
    except StackError as exc:
        print(f"asg dev: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if node is not None:
            node.stop()
    print("ASG Refinery dev stack stopped.", flush=True)
    return 0


def _start_cores(stack: Stack, settings: Settings) -> tuple[LocalNode | None, list[str]]:
    """Core and gateway; on Aerospike first a local node when none answers (from
    ASG_AEROSPIKE_BUNDLE), and a second core on the same namespace. The cores' addresses."""
    url = aerospike_url(settings)
    node = ensure_node(url, settings, os.environ.get("ASG_AEROSPIKE_BUNDLE")) if url else None
    try:
        stack.start()
        cores = [stack.grpc_addr]
        if url:
            stack.wait_ready()  # the first core writes the operator token the second one reads
            cores.append(start_second_core(stack))
    except BaseException:
        if node is not None:
            node.stop()
        raise
    return node, cores


def _dev_mode_line(on: bool) -> str:
    if on:
        return "on: webhook, callback and manifest URLs may be http:// to loopback (ASG_DEV_MODE)"
    return "off: https URLs only, as in production (ASG_DEV_MODE=off)"


def _dev_workers(raw: str | None) -> int:
    if not raw:
        return DEFAULT_WORKERS
    if not raw.isdigit():
        raise SettingsError(f"ASG_DEV_WORKERS must be a whole number of workers, got {raw!r}")
    return int(raw)


def add_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("dev", help="run core, gateway and simulated workers on the embedded defaults")
    run.add_argument("--http", metavar="HOST:PORT", help="REST address (ASG_HTTP_ADDR, 127.0.0.1:8081)")
    run.add_argument("--grpc", metavar="HOST:PORT", help="gRPC address (ASG_GRPC_ADDR, 127.0.0.1:50051)")
    run.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (ASG_DATA_DIR, else the one `asg dev` last recorded, else ./var)",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="simulated workers to run (ASG_DEV_WORKERS, 3)",
    )
    dev_challenge.add_arguments(run)
    run.set_defaults(func=dev)
