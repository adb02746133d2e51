"""Mining: headers, merkle roots and merkle paths checked against an independent computation
and against bsv-sdk's own verification."""

from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest
from bsv import MerklePath, PrivateKey

from asg_grpc.ledger.blocks import BITS, Header
from asg_grpc.ledger.ledger import Ledger
from tests.core.ledger.conftest import NOW, build


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def independent_root(txids: list[str]) -> str:
    """Bitcoin's merkle root written out from scratch: pair up, duplicate an odd last node."""
    nodes = [bytes.fromhex(t)[::-1] for t in txids]
    while len(nodes) > 1:
        if len(nodes) % 2 == 1:
            nodes.append(nodes[-1])
        nodes = [dsha(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
    return nodes[0][::-1].hex()


def submit_chain(ledger: Ledger, count: int) -> list[str]:
    """`count` payouts, each spending the previous one's change."""
    key, me = ledger.wallet.private_key, ledger.wallet.address
    txids = []
    for _ in range(count):
        [utxo] = ledger.spendable()
        tx = build([utxo], [(PrivateKey().address(), 300)], key, change_to=me)
        txids.append(ledger.submit(tx, NOW))
    return txids


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_mined_block_commits_to_its_transactions(ledger: Ledger, count: int) -> None:
    txids = submit_chain(ledger, count)
    genesis_block = ledger.store.ledger_block(0)
    assert genesis_block is not None

    mined = ledger.mine(NOW + 5)

    assert mined is not None
    block = mined.block
    assert block.height == 1
    assert mined.txids[1:] == txids  # after the coinbase, in acceptance order
    root = independent_root(mined.txids)
    header = block.header
    assert len(header) == 80
    version, prev, merkle, when, bits, nonce = struct.unpack("<I32s32sIII", header)
    assert version == 1
    assert merkle[::-1].hex() == root == block.merkle_root
    assert prev[::-1].hex() == genesis_block.block_hash
    assert (when, bits, nonce) == (int(NOW + 5), BITS, 0)
    assert dsha(header)[::-1].hex() == block.block_hash
    for txid in mined.txids:
        record = ledger.store.ledger_transaction(txid)
        assert record is not None and record.block_height == 1 and record.merkle_path is not None
        path = MerklePath.from_binary(record.merkle_path)
        assert path.block_height == 1
        assert path.compute_root(txid) == root


def test_bsv_sdk_verifies_a_mined_transaction_against_the_local_headers(ledger: Ledger) -> None:
    [txid] = submit_chain(ledger, 1)
    ledger.mine(NOW + 5)
    tx = ledger.transaction(txid)
    assert tx is not None and tx.merkle_path is not None
    tracker = ledger.chain_tracker()

    assert asyncio.run(tx.verify(chaintracker=tracker)) is True
    assert asyncio.run(tracker.current_height()) == 1
    assert asyncio.run(tracker.is_valid_root_for_height(tx.merkle_path.compute_root(txid), 0)) is False


def test_nothing_pending_mines_no_block(ledger: Ledger) -> None:
    assert ledger.mine(NOW + 5) is None
    assert ledger.store.ledger_tip().height == 0  # type: ignore[union-attr]


def test_a_mined_transaction_is_not_mined_again(ledger: Ledger) -> None:
    [txid] = submit_chain(ledger, 1)
    first = ledger.mine(NOW + 5)
    assert first is not None and txid in first.txids

    assert ledger.mine(NOW + 10) is None
    second_txids = submit_chain(ledger, 1)
    second = ledger.mine(NOW + 10)
    assert second is not None and second.txids[1:] == second_txids
    assert Header.parse(second.block.header).prev_hash == first.block.block_hash


def test_a_block_that_does_not_extend_the_tip_is_refused_whole(ledger: Ledger) -> None:
    submit_chain(ledger, 1)
    stale = ledger.store.ledger_tip()
    mined = ledger.mine(NOW + 5)
    assert mined is not None and stale is not None
    submit_chain(ledger, 1)
    # A second miner that still sees the old tip builds the same height again: refused.
    from asg_grpc.ledger import blocks
    from asg_grpc.store.ledger_records import LedgerBlock, NewLedgerTx

    coinbase = blocks.coinbase(1)
    record = NewLedgerTx(coinbase.txid(), coinbase.serialize(), 0, "coinbase", [], [])
    block = LedgerBlock(1, "ff" * 32, b"\x00" * 80, "00" * 32, int(NOW), 2)
    assert ledger.store.ledger_add_block(block, record, []) is False
    assert ledger.store.ledger_tip() == mined.block


def test_header_time_never_goes_backwards(ledger: Ledger) -> None:
    submit_chain(ledger, 1)
    mined = ledger.mine(NOW - 3600)

    assert mined is not None and mined.block.time == int(NOW)


def test_a_block_naming_an_already_mined_transaction_is_refused_whole(ledger: Ledger) -> None:
    from asg_grpc.ledger import blocks
    from asg_grpc.store.ledger_records import LedgerBlock, NewLedgerTx

    [txid] = submit_chain(ledger, 1)
    mined = ledger.mine(NOW + 5)
    assert mined is not None
    coinbase = blocks.coinbase(2)
    record = NewLedgerTx(coinbase.txid(), coinbase.serialize(), 0, "coinbase", [], [])
    block = LedgerBlock(2, "ee" * 32, b"\x00" * 80, "00" * 32, int(NOW + 10), 2)

    assert ledger.store.ledger_add_block(block, record, [(txid, b"path")]) is False
    assert ledger.store.ledger_tip() == mined.block
    assert ledger.store.ledger_transaction(coinbase.txid()) is None
    record_after = ledger.store.ledger_transaction(txid)
    assert record_after is not None and record_after.block_height == 1
