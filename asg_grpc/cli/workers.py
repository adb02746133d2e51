"""`asg worker register`: an operator creates a worker and hands it its token."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from asg_grpc.operator import find_operator_token, register_worker
from asg_grpc.settings import Settings


def register(args: argparse.Namespace) -> int:
    settings = Settings.from_env().with_overrides(
        data_dir=Path(args.data_dir) if args.data_dir else None, grpc_addr=args.grpc
    )
    token = find_operator_token(settings)
    if token is None:
        print(
            f"asg worker register: no operator token: set ASG_OPERATOR_TOKEN or point --data-dir at "
            f"the core's data dir (looked for {settings.operator_token_path})",
            file=sys.stderr,
        )
        return 2
    types = [t for t in (args.task_types or "").split(",") if t]
    try:
        reply = register_worker(settings.grpc_addr, token, args.name, args.payout_address, types)
    except grpc.RpcError as exc:
        print(f"asg worker register: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(f"worker_id: {reply.worker_id}\ntoken:     {reply.token}\n(the token is shown once)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="manage workers")
    actions = worker.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="create a worker and print its token")
    reg.add_argument("--name", required=True)
    reg.add_argument("--payout-address", required=True, help="BSV P2PKH address the worker is paid to")
    reg.add_argument("--task-types", help="comma-separated; default all four")
    reg.add_argument("--grpc", metavar="HOST:PORT", help="the core (ASG_GRPC_ADDR)")
    reg.add_argument("--data-dir", metavar="DIR", help="where the core keeps operator_token (ASG_DATA_DIR)")
    reg.set_defaults(func=register)
