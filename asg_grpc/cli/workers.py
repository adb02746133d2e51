"""`asg worker register`: an operator creates a worker and hands it its token."""

from __future__ import annotations

import argparse

from asg_grpc.cli.operator import add_core_flags, operator_command
from asg_grpc.operator import register_worker


def register(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    types = [t for t in (args.task_types or "").split(",") if t]
    reply = register_worker(grpc_addr, token, args.name, args.payout_address, types)
    print(f"worker_id: {reply.worker_id}\ntoken:     {reply.token}\n(the token is shown once)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="manage workers")
    actions = worker.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="create a worker and print its token")
    reg.add_argument("--name", required=True, help="the worker's display name, shown to the operator")
    reg.add_argument("--payout-address", required=True, help="BSV P2PKH address the worker is paid to")
    reg.add_argument("--task-types", help="comma-separated task types it may label (default: all four)")
    add_core_flags(reg)
    reg.set_defaults(func=operator_command("worker register", register))
