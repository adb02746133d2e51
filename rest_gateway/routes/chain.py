"""Receipts and the chain: a task's payout receipt, block headers, one transaction."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import chain_pb2
from rest_gateway import models
from rest_gateway.core import Core
from rest_gateway.openapi import AUTHED, errors
from rest_gateway.responses import json
from rest_gateway.routes._declare import by_id

router = APIRouter(tags=["chain"], responses=errors(*AUTHED))

_INT64_MAX = 2**63 - 1
MAX_HEADERS = 2000  # the core's bound too (docs/api.md, Receipts)


by_id(
    router,
    "get_task_receipt",
    path="/v1/tasks/{task_id}/receipt",
    rpc=lambda client: client.chain.GetTaskReceipt,
    request=chain_pb2.GetTaskReceiptRequest,
    render=rest_json.task_receipt,
    response_model=models.TaskReceipt,
    refusals=(404, 409),
)


@router.get(
    "/v1/chain/headers",
    response_model=models.Headers,
)
async def get_headers(
    call: Core,
    from_height: int = Query(0, alias="from", ge=0, le=_INT64_MAX, description="First block height"),
    count: int | None = Query(None, ge=1, le=MAX_HEADERS, description="Headers wanted (default 100)"),
) -> Response:
    # Bounded here too, so an error names `from` as the caller sent it, not the core's field.
    reply = await call(
        call.client.chain.GetHeaders, chain_pb2.GetHeadersRequest(from_height=from_height, count=count)
    )
    return json(rest_json.chain_headers(reply))


by_id(
    router,
    "get_transaction",
    path="/v1/chain/tx/{txid}",
    rpc=lambda client: client.chain.GetTransaction,
    request=chain_pb2.GetTransactionRequest,
    render=rest_json.chain_transaction,
    response_model=models.ChainTransaction,
)
