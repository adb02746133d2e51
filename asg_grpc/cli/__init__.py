"""`asg`: the operator's command line.

asg dev               the whole stack on the embedded defaults, with simulated workers
asg worker register   create a worker and print its token (shown once)
asg jobs ...          batch jobs through the REST API: create (and follow), watch, status, export
asg tasks watch       follow a batch of tasks until every one is decided
asg customer tier     move a customer to another tier (prices, quota, rate limit)
"""

from __future__ import annotations

import argparse
import sys

from asg_grpc.cli import customers, dev, jobs, watch, workers
from asg_grpc.cli.operator import USAGE
from asg_grpc.settings import SettingsError


def parser() -> argparse.ArgumentParser:
    """Every `asg` command; tests/core/test_cli_help.py checks that each option has help."""
    p = argparse.ArgumentParser(prog="asg", description="ASG Refinery operator commands.")
    commands = p.add_subparsers(dest="command", required=True)
    dev.add_parser(commands)
    workers.add_parser(commands)
    watch.add_parsers(commands, jobs.add_parser(commands))
    customers.add_parser(commands)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except SettingsError as exc:  # an ASG_* variable the command cannot use: named, no traceback
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"asg {command}: {exc}", file=sys.stderr)
        code = USAGE
    sys.exit(code)
