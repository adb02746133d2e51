"""ChainService: a task's receipt, block headers and transactions of the ledger.

Every call needs an API key (every read of the API does, and it is what the rate limit
counts). Receipts are scoped to the caller's tasks; headers and transactions are the chain's
public data, which any customer may read, as anyone may on a public explorer.
"""

from __future__ import annotations

import grpc

from asg_grpc.ledger import explorer
from asg_grpc.ledger.explorer import ExplorerStore
from asg_grpc.services.callers import Callers
from asg_grpc.v1 import chain_pb2, chain_pb2_grpc
from asg_grpc.wire import convert


class ChainService(chain_pb2_grpc.ChainServiceServicer):
    def __init__(self, store: ExplorerStore, callers: Callers, *, network: str = "local") -> None:
        self._store = store
        self._callers = callers
        self._network = network

    async def GetTaskReceipt(
        self, request: chain_pb2.GetTaskReceiptRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.TaskReceipt:
        customer_id = self._callers.customer(context).customer_id
        found = explorer.task_receipt(self._store, customer_id, request.task_id, network=self._network)
        return convert.task_receipt(found)

    async def GetHeaders(
        self, request: chain_pb2.GetHeadersRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.GetHeadersResponse:
        self._callers.customer(context)
        count = request.count if request.HasField("count") else None
        blocks, tip = explorer.headers(self._store, request.from_height, count)
        return chain_pb2.GetHeadersResponse(headers=[convert.block_header(b) for b in blocks], tip_height=tip)

    async def GetTransaction(
        self, request: chain_pb2.GetTransactionRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.ChainTransaction:
        self._callers.customer(context)
        tx = explorer.transaction(self._store, request.txid)
        return convert.chain_transaction(tx)
