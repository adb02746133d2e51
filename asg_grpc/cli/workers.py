"""`asg worker register`: an operator creates a worker and hands it its token.
`asg worker list/show/reinstate`: each worker's standing in the adaptive consensus engine per
task family (docs/quality.md), and lifting a ban."""

from __future__ import annotations

import argparse

from asg_grpc.cli.operator import FAILED, add_core_flags, operator_command
from asg_grpc.operator import register_worker, reinstate_worker, worker_quality
from asg_grpc.v1 import labeling_pb2

HEADER = f"{'worker_id':<34} {'family':<24} {'status':<10} {'labels':>6} {'gold':>9} {'accuracy':>8}"


def register(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    types = [t for t in (args.task_types or "").split(",") if t]
    reply = register_worker(
        grpc_addr, token, args.name, args.payout_address, types, challenge_gateway=args.challenge_gateway
    )
    print(f"worker_id: {reply.worker_id}\ntoken:     {reply.token}\n(the token is shown once)")
    return 0


def _row(w: labeling_pb2.WorkerQuality) -> str:
    status = "banned" if w.banned else "reinstated" if w.reinstated else "ok"
    family = ",".join(w.family_options)
    family = family if len(family) <= 24 else family[:23] + "…"
    gold = f"{w.gold_correct}/{w.gold_labels}"
    return f"{w.worker_id:<34} {family:<24} {status:<10} {w.labels:>6} {gold:>9} {w.estimated_accuracy:>8.3f}"


def _table(reply: labeling_pb2.ListWorkerQualityResponse) -> None:
    print(HEADER)
    for w in reply.workers:
        print(_row(w))


def list_workers(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    reply = worker_quality(grpc_addr, token)
    workers = [w for w in reply.workers if w.banned] if args.banned else list(reply.workers)
    _table(labeling_pb2.ListWorkerQualityResponse(workers=workers))
    return 0


def show(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    reply = worker_quality(grpc_addr, token, args.worker_id)
    if not reply.workers:
        print(f"asg worker show: {args.worker_id} has no record in the consensus engine")
        return FAILED
    _table(reply)
    return 0


def reinstate(grpc_addr: str, token: str, args: argparse.Namespace) -> int:
    options = [o for o in (args.family or "").split(",") if o]
    _table(reinstate_worker(grpc_addr, token, args.worker_id, options))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="manage workers")
    actions = worker.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="create a worker and print its token")
    reg.add_argument("--name", required=True, help="the worker's display name, shown to the operator")
    reg.add_argument("--payout-address", required=True, help="BSV P2PKH address the worker is paid to")
    reg.add_argument("--task-types", help="comma-separated task types it may label (default: all four)")
    reg.add_argument(
        "--challenge-gateway",
        action="store_true",
        help="it is a challenge gateway (asg-challenge): the only kind offered `labor: challenge` tasks",
    )
    add_core_flags(reg)
    reg.set_defaults(func=operator_command("worker register", register))

    lst = actions.add_parser("list", help="every worker's standing per task family (adaptive consensus)")
    lst.add_argument("--banned", action="store_true", help="only the families where a worker is banned")
    add_core_flags(lst)
    lst.set_defaults(func=operator_command("worker list", list_workers))

    sh = actions.add_parser("show", help="one worker's standing per task family")
    sh.add_argument("worker_id", help="wkr_…")
    add_core_flags(sh)
    sh.set_defaults(func=operator_command("worker show", show))

    rein = actions.add_parser("reinstate", help="lift a worker's ban (the spammer floor keeps off it)")
    rein.add_argument("worker_id", help="wkr_…")
    rein.add_argument(
        "--family", metavar="OPTIONS", help="the family's options, comma-separated; default: every ban"
    )
    add_core_flags(rein)
    rein.set_defaults(func=operator_command("worker reinstate", reinstate))
