"""`asg customer tier <customer_id> <tier>`: an operator moves a customer to another tier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from asg_grpc.operator import find_operator_token, set_customer_tier
from asg_grpc.settings import Settings


def tier(args: argparse.Namespace) -> int:
    settings = Settings.from_env().with_overrides(
        data_dir=Path(args.data_dir) if args.data_dir else None, grpc_addr=args.grpc
    )
    token = find_operator_token(settings)
    if token is None:
        print(
            f"asg customer tier: no operator token: set ASG_OPERATOR_TOKEN or point --data-dir at "
            f"the core's data dir (looked for {settings.operator_token_path})",
            file=sys.stderr,
        )
        return 2
    try:
        customer = set_customer_tier(settings.grpc_addr, token, args.customer_id, args.tier)
    except grpc.RpcError as exc:
        print(f"asg customer tier: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(
        f"customer_id: {customer.customer_id}\ntier:        {customer.tier}\n"
        f"label_quota: {customer.label_quota} ({customer.quota_remaining} remaining)"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    customer = commands.add_parser("customer", help="manage customers")
    actions = customer.add_subparsers(dest="action", required=True)
    cmd = actions.add_parser("tier", help="move a customer to a tier (its quota becomes the tier's)")
    cmd.add_argument("customer_id")
    cmd.add_argument("tier", help="a configured tier: sandbox, pro, or one of ASG_TIERS")
    cmd.add_argument("--grpc", metavar="HOST:PORT", help="the core (ASG_GRPC_ADDR)")
    cmd.add_argument("--data-dir", metavar="DIR", help="where the core keeps operator_token (ASG_DATA_DIR)")
    cmd.set_defaults(func=tier)
