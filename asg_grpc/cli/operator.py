"""What the operator's commands (`asg worker register`, `asg customer tier`) share: the core's
address and the operator token from the settings and flags, and how a refusal is reported.

Exit codes: 0 done, 1 the core refused or could not be reached, 2 a usage or settings error
(no operator token found, a bad ASG_* variable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import grpc

from asg_grpc.operator import find_operator_token
from asg_grpc.settings import Settings

FAILED = 1
USAGE = 2

# (core address, operator token, parsed flags) → exit code
OperatorCall = Callable[[str, str, argparse.Namespace], int]


def add_core_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grpc", metavar="HOST:PORT", help="the core (ASG_GRPC_ADDR, else the one `asg dev` recorded)"
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the core keeps operator_token (ASG_DATA_DIR, else as `asg dev` recorded, else ./var)",
    )


def operator_command(name: str, call: OperatorCall) -> Callable[[argparse.Namespace], int]:
    """`call` run with the operator token; `name` ("worker register") prefixes every message."""

    def run(args: argparse.Namespace) -> int:
        settings = Settings.from_flags(args.data_dir, args.grpc)
        try:
            token = find_operator_token(settings)
        except OSError as exc:
            print(f"asg {name}: {exc}", file=sys.stderr)
            return USAGE
        if token is None:
            print(
                f"asg {name}: no operator token: set ASG_OPERATOR_TOKEN, or point --data-dir / "
                f"ASG_DATA_DIR at the core's data dir, or start the stack with `asg dev` "
                f"(looked for {settings.operator_token_path.resolve()}; docs/cli.md)",
                file=sys.stderr,
            )
            return USAGE
        try:
            return call(settings.grpc_addr, token, args)
        except grpc.RpcError as exc:
            print(f"asg {name}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return FAILED

    return run
