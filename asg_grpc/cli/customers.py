"""`asg customer tier <customer_id> <tier>`: an operator moves a customer to another tier."""

from __future__ import annotations

import argparse

from asg_grpc.cli.operator import add_core_flags, operator_command
from asg_grpc.operator import set_customer_tier


def tier(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    customer = set_customer_tier(grpc_addr, token, args.customer_id, args.tier)
    print(
        f"customer_id: {customer.customer_id}\ntier:        {customer.tier}\n"
        f"label_quota: {customer.label_quota} ({customer.quota_remaining} remaining)"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    customer = commands.add_parser("customer", help="manage customers")
    actions = customer.add_subparsers(dest="action", required=True)
    cmd = actions.add_parser("tier", help="move a customer to a tier (its quota becomes the tier's)")
    cmd.add_argument("customer_id", help="the customer's id, cust_… (GET /v1/customers/me)")
    cmd.add_argument("tier", help="a configured tier: sandbox, pro, or one of ASG_TIERS")
    add_core_flags(cmd)
    cmd.set_defaults(func=operator_command("customer tier", tier))
