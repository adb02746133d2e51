"""A receipt verifies offline with the SDK alone, and every kind of tampering is caught."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from bsv import MerklePath, PrivateKey, Transaction
from bsv.utils import Reader, Writer

from asg_gateway import (
    HeadersChainTracker,
    ReceiptInvalid,
    averify_receipt_document,
    verify_receipt_document,
)
from asg_grpc.domain.errors import NotFound, ValidationError
from asg_grpc.ledger.errors import NotMinedYet
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.receipts import build_receipt
from tests.core.ledger.conftest import NOW, build

ALICE = PrivateKey().address()
BOB = PrivateKey().address()


@pytest.fixture
def payout(ledger: Ledger) -> str:
    """A mined payout: 300 to Alice (vout 0), 600 to Bob (vout 1), 300 to Alice (vout 2)."""
    [utxo] = ledger.spendable()
    tx = build(
        [utxo],
        [(ALICE, 300), (BOB, 600), (ALICE, 300)],
        ledger.wallet.private_key,
        change_to=ledger.wallet.address,
    )
    txid = ledger.submit(tx, NOW)
    assert ledger.mine(NOW + 5) is not None
    return txid


def headers(ledger: Ledger) -> dict[int, str]:
    """What a verifier trusts: the ledger's headers by height (fetched apart from the receipt)."""
    tip = ledger.store.ledger_tip()
    assert tip is not None
    found = {}
    for height in range(tip.height + 1):
        block = ledger.store.ledger_block(height)
        assert block is not None
        found[height] = block.header.hex()
    return found


def receipt(ledger: Ledger, txid: str, vouts: list[int]) -> dict[str, Any]:
    return build_receipt(ledger.store, txid, vouts).to_document()


def test_a_receipt_verifies_offline(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0, 2])

    verified = verify_receipt_document(document, headers(ledger))

    assert verified.txid == payout
    assert verified.block_height == 1
    assert [(o.vout, o.satoshis, o.address) for o in verified.outputs] == [(0, 300, ALICE), (2, 300, ALICE)]
    assert verified.total_satoshis == 600
    assert document["block"]["hash"] == verified.block_hash == ledger.store.ledger_block(1).block_hash  # type: ignore[union-attr]


def test_a_receipt_verifies_with_a_chain_tracker(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [1])

    assert verify_receipt_document(document, ledger.chain_tracker()).outputs[0].address == BOB
    assert (
        asyncio.run(averify_receipt_document(document, HeadersChainTracker(headers(ledger)))).txid == payout
    )


def test_the_receipt_beef_is_standard_for_bsv_sdk(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    tx = Transaction.from_beef(document["beef"])

    assert tx.txid() == payout
    assert asyncio.run(tx.verify(chaintracker=HeadersChainTracker(headers(ledger)))) is True


def test_the_receipt_carries_the_spent_transaction_and_its_script_is_checked(
    ledger: Ledger, payout: str
) -> None:
    document = receipt(ledger, payout, [0])
    beef = bytes.fromhex(document["beef"])
    bumps, txs = _split_beef(beef)
    assert len(txs) == 2  # the genesis transaction it spends, then the payout
    payout_tx = txs[1][0]
    payout_tx.inputs[0].unlocking_script = txs[0][0].outputs[0].locking_script  # not a signature
    # Keep the txid claim consistent so only the script check can catch it.
    document["txid"] = payout_tx.txid()
    document["beef"] = _join_beef(bumps, txs).hex()

    with pytest.raises(ReceiptInvalid, match="input 0 of the payout does not unlock"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_amount_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    document["outputs"][0]["satoshis"] = 3000

    with pytest.raises(ReceiptInvalid, match="vout 0 pays 300 satoshis, the receipt claims 3000"):
        verify_receipt_document(document, headers(ledger))


def test_an_output_listed_twice_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    document["outputs"].append(dict(document["outputs"][0]))

    with pytest.raises(ReceiptInvalid, match="vout 0 is listed twice"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_address_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    document["outputs"][0]["address"] = BOB

    with pytest.raises(ReceiptInvalid, match=f"vout 0 does not pay {BOB}"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_txid_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    document["txid"] = "00" * 32

    with pytest.raises(ReceiptInvalid, match=f"beef holds transaction {payout}, the receipt names"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_transaction_in_the_beef_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    bumps, txs = _split_beef(bytes.fromhex(document["beef"]))
    txs[-1][0].outputs[0].satoshis = 3000
    document["beef"] = _join_beef(bumps, txs).hex()

    with pytest.raises(ReceiptInvalid, match=r"beef holds transaction .*, the receipt names"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_merkle_path_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    bumps, txs = _split_beef(bytes.fromhex(document["beef"]))
    path = bumps[txs[-1][1]]
    sibling = next(leaf for leaf in path.path[0] if not leaf.get("txid") and "hash_str" in leaf)
    sibling["hash_str"] = "11" * 32
    document["beef"] = _join_beef(bumps, txs).hex()

    with pytest.raises(ReceiptInvalid, match="merkle path does not lead to the merkle root"):
        verify_receipt_document(document, headers(ledger))


def test_tampered_header_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])
    header = bytearray.fromhex(document["block"]["header"])
    header[-1] ^= 1  # the nonce
    forged = copy.deepcopy(document)
    forged["block"]["header"] = header.hex()

    with pytest.raises(ReceiptInvalid, match="block header does not hash to block"):
        verify_receipt_document(forged, headers(ledger))
    # ... and re-hashed to match, it is still not the header the verifier trusts
    import hashlib

    forged["block"]["hash"] = hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1].hex()
    with pytest.raises(ReceiptInvalid, match="differs from the trusted header at height 1"):
        verify_receipt_document(forged, headers(ledger))


def test_a_header_the_verifier_does_not_have_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])

    with pytest.raises(ReceiptInvalid, match="no trusted header for block 1"):
        verify_receipt_document(document, {0: headers(ledger)[0]})


def test_a_chain_tracker_that_does_not_know_the_root_fails(ledger: Ledger, payout: str) -> None:
    document = receipt(ledger, payout, [0])

    with pytest.raises(ReceiptInvalid, match="chain tracker does not know merkle root"):
        verify_receipt_document(document, HeadersChainTracker({0: headers(ledger)[0]}))


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("txid"),
        lambda d: d.update(outputs=[]),
        lambda d: d["block"].update(height="1"),
        lambda d: d.update(beef="zz"),
        lambda d: d.update(beef=d["beef"][:-10]),
        lambda d: d["outputs"][0].update(vout=99),
    ],
)
def test_malformed_receipts_fail_cleanly(ledger: Ledger, payout: str, breakage: Any) -> None:
    document = receipt(ledger, payout, [0])
    breakage(document)

    with pytest.raises(ReceiptInvalid):
        verify_receipt_document(document, headers(ledger))


def test_no_receipt_before_the_block(ledger: Ledger) -> None:
    [utxo] = ledger.spendable()
    tx = build([utxo], [(ALICE, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)
    txid = ledger.submit(tx, NOW)

    with pytest.raises(NotMinedYet):
        build_receipt(ledger.store, txid, [0])
    with pytest.raises(NotFound):
        build_receipt(ledger.store, "ab" * 32, [0])


def test_receipt_vouts_must_be_address_outputs_of_the_transaction(ledger: Ledger, payout: str) -> None:
    with pytest.raises(ValidationError, match="vouts 7 is not an output"):
        build_receipt(ledger.store, payout, [7])
    with pytest.raises(ValidationError, match="must name at least one output"):
        build_receipt(ledger.store, payout, [])


def _split_beef(beef: bytes) -> tuple[list[MerklePath], list[tuple[Transaction, int]]]:
    reader = Reader(beef)
    assert reader.read_uint32_le() == 4022206465
    bumps = [MerklePath.from_reader(reader) for _ in range(reader.read_var_int_num())]
    txs = []
    for _ in range(reader.read_var_int_num()):
        tx = Transaction.from_reader(reader)
        assert reader.read_uint8() == 1
        txs.append((tx, reader.read_var_int_num()))
    return bumps, txs


def _join_beef(bumps: list[MerklePath], txs: list[tuple[Transaction, int]]) -> bytes:
    writer = Writer()
    writer.write_uint32_le(4022206465)
    writer.write_var_int_num(len(bumps))
    for bump in bumps:
        writer.write(bump.to_binary())
    writer.write_var_int_num(len(txs))
    for tx, index in txs:
        writer.write(tx.serialize())
        writer.write_uint8(1)
        writer.write_var_int_num(index)
    data: bytes = writer.to_bytes()
    return data


def test_a_payout_whose_parent_shares_its_block_verifies(ledger: Ledger) -> None:
    key, me = ledger.wallet.private_key, ledger.wallet.address
    [utxo] = ledger.spendable()
    parent = ledger.submit(build([utxo], [(BOB, 300)], key, change_to=me), NOW)
    [change] = ledger.spendable()
    assert change.txid == parent
    child = ledger.submit(build([change], [(ALICE, 700)], key, change_to=me), NOW)
    mined = ledger.mine(NOW + 5)
    assert mined is not None and mined.txids[1:] == [parent, child]
    document = receipt(ledger, child, [0])
    bumps, txs = _split_beef(bytes.fromhex(document["beef"]))

    assert len(bumps) == 1 and [tx.txid() for tx, _ in txs] == [parent, child]  # one combined path
    assert verify_receipt_document(document, headers(ledger)).outputs[0].satoshis == 700


def test_a_receipt_verifies_when_its_parent_sits_three_places_before_it_in_one_block(ledger: Ledger) -> None:
    """Parent at an even position, payout three after it: bsv-sdk's own path trimming drops a
    hash this shape needs; the receipt's combined path must keep it."""
    key, wallet_address = ledger.wallet.private_key, ledger.wallet.address
    [genesis] = ledger.spendable()
    filler = ledger.submit(build([genesis], [], key, change_to=wallet_address), NOW)  # position 1
    [change] = ledger.store.ledger_outputs([(filler, 0)]).values()
    parent = build([change], [(wallet_address, 10_000)] * 3, key, change_to=wallet_address)
    parent_txid = ledger.submit(parent, NOW)  # position 2
    outputs = ledger.store.ledger_outputs([(parent_txid, i) for i in range(3)])
    for vout in (0, 1):  # positions 3 and 4
        ledger.submit(build([outputs[(parent_txid, vout)]], [], key, change_to=wallet_address), NOW)
    payout = ledger.submit(
        build([outputs[(parent_txid, 2)]], [(ALICE, 300)], key, change_to=wallet_address), NOW
    )
    mined = ledger.mine(NOW + 5)
    assert mined is not None and mined.txids.index(parent_txid) == 2 and mined.txids.index(payout) == 5

    verified = verify_receipt_document(receipt(ledger, payout, [0]), headers(ledger))

    assert (verified.txid, verified.total_satoshis) == (payout, 300)
