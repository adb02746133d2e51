"""Receipts and the chain: a task's payout receipt, block headers, one transaction."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from asg_common import rest_json
from asg_grpc.v1 import chain_pb2
from rest_gateway.core import call_metadata, core
from rest_gateway.errors import BadRequest
from rest_gateway.responses import json

router = APIRouter(tags=["chain"])

_INT32 = 2**31
_INT64 = 2**63


@router.get("/v1/tasks/{task_id}/receipt")
async def get_task_receipt(request: Request, task_id: str) -> Response:
    client = core(request)
    reply = await client.chain.GetTaskReceipt(
        chain_pb2.GetTaskReceiptRequest(task_id=task_id),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(rest_json.task_receipt(reply))


@router.get("/v1/chain/headers")
async def get_headers(
    request: Request, from_height: int = Query(0, alias="from"), count: int | None = None
) -> Response:
    # Only what the int fields can carry is checked here; the ranges are the core's rule.
    if not -_INT64 <= from_height < _INT64:
        raise BadRequest("from", "is out of range")
    if count is not None and not -_INT32 <= count < _INT32:
        raise BadRequest("count", "is out of range")
    client = core(request)
    reply = await client.chain.GetHeaders(
        chain_pb2.GetHeadersRequest(from_height=from_height, count=count),
        metadata=call_metadata(request),
        timeout=client.timeout,
    )
    return json(rest_json.chain_headers(reply))


@router.get("/v1/chain/tx/{txid}")
async def get_transaction(request: Request, txid: str) -> Response:
    client = core(request)
    reply = await client.chain.GetTransaction(
        chain_pb2.GetTransactionRequest(txid=txid), metadata=call_metadata(request), timeout=client.timeout
    )
    return json(rest_json.chain_transaction(reply))
