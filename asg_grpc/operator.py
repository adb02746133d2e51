"""The operator's side of the core: the token that guards operator RPCs, and those RPCs.

From ASG_OPERATOR_TOKEN when set; otherwise generated on first start into the data dir with
mode 0600, so `asg worker register` on the same machine finds it without configuration.
"""

from __future__ import annotations

import secrets

import grpc

from asg_grpc.secret_file import read_or_create
from asg_grpc.settings import Settings
from asg_grpc.v1 import billing_pb2, billing_pb2_grpc, labeling_pb2, labeling_pb2_grpc

PREFIX = "op_"


def find_operator_token(settings: Settings) -> str | None:
    """The token from the environment or the data dir, if there is one."""
    if settings.operator_token:
        return settings.operator_token
    path = settings.operator_token_path
    if not path.exists():
        return None
    token = path.read_text().strip()
    if not token:
        raise OSError(f"{path} is empty: delete it to have a new operator token generated")
    return token


def operator_token(settings: Settings) -> str:
    """The token, generated into the data dir on first use."""
    return settings.operator_token or read_or_create(
        settings.operator_token_path, lambda: PREFIX + secrets.token_urlsafe(32)
    )


def register_worker(
    grpc_addr: str,
    token: str,
    name: str,
    payout_address: str,
    task_types: list[str] | None = None,
    *,
    challenge_gateway: bool = False,
) -> labeling_pb2.RegisterWorkerResponse:
    with grpc.insecure_channel(grpc_addr) as channel:
        return labeling_pb2_grpc.LabelingServiceStub(channel).RegisterWorker(
            labeling_pb2.RegisterWorkerRequest(
                name=name,
                payout_address=payout_address,
                task_types=task_types or [],
                challenge_gateway=challenge_gateway,
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )


def set_customer_tier(grpc_addr: str, token: str, customer_id: str, tier: str) -> billing_pb2.Customer:
    with grpc.insecure_channel(grpc_addr) as channel:
        return billing_pb2_grpc.BillingServiceStub(channel).SetCustomerTier(
            billing_pb2.SetCustomerTierRequest(customer_id=customer_id, tier=tier),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )


def worker_quality(grpc_addr: str, token: str, worker_id: str = "") -> labeling_pb2.ListWorkerQualityResponse:
    with grpc.insecure_channel(grpc_addr) as channel:
        return labeling_pb2_grpc.LabelingServiceStub(channel).ListWorkerQuality(
            labeling_pb2.ListWorkerQualityRequest(worker_id=worker_id),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )


def reinstate_worker(
    grpc_addr: str, token: str, worker_id: str, family_options: list[str] | None = None
) -> labeling_pb2.ListWorkerQualityResponse:
    with grpc.insecure_channel(grpc_addr) as channel:
        return labeling_pb2_grpc.LabelingServiceStub(channel).ReinstateWorker(
            labeling_pb2.ReinstateWorkerRequest(worker_id=worker_id, family_options=family_options or []),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )
