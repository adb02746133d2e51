"""The operator's side of the core: the token that guards operator RPCs, and those RPCs.

From ASG_OPERATOR_TOKEN when set; otherwise generated on first start into the data dir with
mode 0600, so `asg worker register` on the same machine finds it without configuration.
"""

from __future__ import annotations

import os
import secrets

import grpc

from asg_grpc.settings import Settings
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc

PREFIX = "op_"


def operator_token(settings: Settings, *, create: bool = True) -> str | None:
    if settings.operator_token:
        return settings.operator_token
    path = settings.operator_token_path
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def register_worker(
    grpc_addr: str, token: str, name: str, payout_address: str, task_types: list[str] | None = None
) -> labeling_pb2.RegisterWorkerResponse:
    with grpc.insecure_channel(grpc_addr) as channel:
        return labeling_pb2_grpc.LabelingServiceStub(channel).RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(
                name=name, payout_address=payout_address, task_types=task_types or []
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )
