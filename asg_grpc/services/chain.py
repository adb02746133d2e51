"""ChainService: a task's receipt, block headers and transactions of the ledger.

Every call needs an API key (every read of the API does, and it is what the rate limit
counts). Receipts are scoped to the caller's tasks; headers and transactions are the chain's
public data, which any customer may read, as anyone may on a public explorer.
"""

from __future__ import annotations

import grpc

from asg_grpc.ledger import explorer
from asg_grpc.ledger.receipts import RECEIPT_VERSION
from asg_grpc.services.callers import Callers
from asg_grpc.store import Store
from asg_grpc.store.ledger_records import LedgerBlock
from asg_grpc.v1 import chain_pb2, chain_pb2_grpc


class ChainService(chain_pb2_grpc.ChainServiceServicer):
    def __init__(self, store: Store, callers: Callers, *, network: str = "local") -> None:
        self._store = store
        self._callers = callers
        self._network = network

    async def GetTaskReceipt(
        self, request: chain_pb2.GetTaskReceiptRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.TaskReceipt:
        customer_id = self._callers.customer(context).customer_id
        found = explorer.task_receipt(self._store, customer_id, request.task_id, network=self._network)
        receipt, settlement = found.receipt, found.settlement
        return chain_pb2.TaskReceipt(
            version=RECEIPT_VERSION,
            network=receipt.network,
            txid=receipt.txid,
            outputs=[
                chain_pb2.ReceiptOutput(vout=o.vout, satoshis=o.satoshis, address=o.address)
                for o in receipt.outputs
            ],
            beef=receipt.beef,
            block=chain_pb2.BlockRef(
                height=receipt.block_height, block_hash=receipt.block_hash, header=receipt.header
            ),
            task_id=settlement.task_id,
            bsv_txid=settlement.txid,
            total_cost_sats=settlement.total_cost_sats,
            payouts=[
                chain_pb2.TaskPayout(worker_id=worker_id, vout=vout, sats=sats)
                for worker_id, vout, sats in settlement.payouts
            ],
        )

    async def GetHeaders(
        self, request: chain_pb2.GetHeadersRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.GetHeadersResponse:
        self._callers.customer(context)
        count = request.count if request.HasField("count") else None
        blocks, tip = explorer.headers(self._store, request.from_height, count)
        return chain_pb2.GetHeadersResponse(headers=[_header(b) for b in blocks], tip_height=tip)

    async def GetTransaction(
        self, request: chain_pb2.GetTransactionRequest, context: grpc.aio.ServicerContext
    ) -> chain_pb2.ChainTransaction:
        self._callers.customer(context)
        tx = explorer.transaction(self._store, request.txid)
        return chain_pb2.ChainTransaction(
            txid=tx.txid,
            raw=tx.raw,
            block_height=tx.block_height,
            block_hash=tx.block_hash,
            fee=tx.fee,
            outputs=[
                chain_pb2.TransactionOutput(vout=o.vout, satoshis=o.satoshis, address=o.address)
                for o in tx.outputs
            ],
        )


def _header(block: LedgerBlock) -> chain_pb2.BlockHeader:
    return chain_pb2.BlockHeader(
        height=block.height,
        block_hash=block.block_hash,
        header=block.header,
        merkle_root=block.merkle_root,
        time=block.time,
    )
