"""The miner loop mines on its interval and once more when stopped."""

from __future__ import annotations

import asyncio

import pytest
from bsv import PrivateKey

from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.miner import Miner
from tests.core.ledger.conftest import NOW, build


def pay(ledger: Ledger) -> str:
    [utxo] = ledger.spendable()
    tx = build(
        [utxo], [(PrivateKey().address(), 300)], ledger.wallet.private_key, change_to=ledger.wallet.address
    )
    return ledger.submit(tx, NOW)


@pytest.mark.asyncio
async def test_the_miner_mines_accepted_transactions_on_its_interval(ledger: Ledger) -> None:
    miner = Miner(ledger, interval=0.02)
    await miner.start()
    try:
        txid = pay(ledger)
        for _ in range(200):
            record = ledger.store.ledger_transaction(txid)
            if record is not None and record.block_height is not None:
                break
            await asyncio.sleep(0.01)
        assert record is not None and record.block_height == 1
    finally:
        await miner.stop()


@pytest.mark.asyncio
async def test_stopping_the_miner_mines_what_is_pending(ledger: Ledger) -> None:
    miner = Miner(ledger, interval=3600)
    await miner.start()
    txid = pay(ledger)

    await miner.stop()

    record = ledger.store.ledger_transaction(txid)
    assert record is not None and record.block_height == 1
