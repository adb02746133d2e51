"""Receipts: what proves to a worker, offline, that a payout paid them.

A receipt names the payout transaction and the outputs paying one address, and carries the
transaction as BEEF (BRC-62, version 1: the transaction with its merkle path, preceded by the
transactions it spends with theirs, so their scripts can be checked too) and the header of the
block that holds it. `asg_gateway.verify_receipt_document` checks one. Shape: docs/ledger.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bsv import MerklePath, Transaction
from bsv.utils import Writer

from asg_grpc.domain.errors import NotFound, ValidationError
from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.ledger.errors import NotMinedYet
from asg_grpc.ledger.rules import NULL_TXID
from asg_grpc.store.areas import Ledger

BEEF_V1 = 4022206465  # BRC-62 version 1: the bytes 01 00 be ef on the wire
RECEIPT_VERSION = 1


@dataclass(frozen=True, slots=True)
class PaidOutput:
    vout: int
    satoshis: int
    address: str


@dataclass(frozen=True, slots=True)
class Receipt:
    txid: str
    outputs: tuple[PaidOutput, ...]
    beef: bytes
    block_height: int
    block_hash: str
    header: bytes  # the 80 bytes
    network: str = "local"

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready receipt (docs/ledger.md, "Receipts")."""
        return {
            "version": RECEIPT_VERSION,
            "network": self.network,
            "txid": self.txid,
            "outputs": [{"vout": o.vout, "satoshis": o.satoshis, "address": o.address} for o in self.outputs],
            "beef": self.beef.hex(),
            "block": {"height": self.block_height, "hash": self.block_hash, "header": self.header.hex()},
        }


def p2pkh_hash(script: bytes) -> bytes | None:
    """The key hash of a P2PKH locking script (OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG)."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return script[3:23]
    return None


def _mined(store: Ledger, txid: str) -> tuple[Transaction, MerklePath, int]:
    record = store.ledger_transaction(txid)
    if record is None:
        raise NotFound(f"transaction {txid} is not on the ledger")
    if record.merkle_path is None or record.block_height is None:
        raise NotMinedYet(txid)
    tx = Transaction.from_hex(record.raw)
    assert tx is not None  # the store holds only transactions that parsed
    return tx, MerklePath.from_binary(record.merkle_path), record.block_height


def build_beef(store: Ledger, txid: str) -> bytes:
    """BEEF v1 of a mined transaction and the mined transactions it spends, each with its
    merkle path (paths of one block combined into one BUMP, as BRC-62 wants)."""
    tx, path, _ = _mined(store, txid)
    entries: list[tuple[Transaction, MerklePath]] = []
    for source in dict.fromkeys(i.source_txid for i in tx.inputs if i.source_txid != NULL_TXID):
        entries.append(_mined(store, source)[:2])
    entries.append((tx, path))
    bumps: dict[int, MerklePath] = {}
    for _, merkle_path in entries:
        known = bumps.get(merkle_path.block_height)
        bumps[merkle_path.block_height] = merkle_path if known is None else _merged(known, merkle_path)
    order = list(bumps)
    writer = Writer()
    writer.write_uint32_le(BEEF_V1)
    writer.write_var_int_num(len(order))
    for height in order:
        writer.write(bumps[height].to_binary())
    writer.write_var_int_num(len(entries))
    for entry_tx, merkle_path in entries:
        writer.write(entry_tx.serialize())
        writer.write_uint8(1)
        writer.write_var_int_num(order.index(merkle_path.block_height))
    data: bytes = writer.to_bytes()
    return data


def _merged(a: MerklePath, b: MerklePath) -> MerklePath:
    """One path proving the transactions of both (same block): every node of either, by level.

    Not bsv-sdk's `MerklePath.combine`: its trim (2.4.0) drops a sibling still needed when two
    leaves sit three places apart with the first at an even offset. Extra nodes cost a few bytes
    and every verifier accepts them."""
    levels = []
    for own, other in zip(a.path, b.path, strict=True):
        by_offset = {leaf["offset"]: dict(leaf) for leaf in own}
        for leaf in other:
            known = by_offset.setdefault(leaf["offset"], dict(leaf))
            if leaf.get("txid"):
                known["txid"] = True
        levels.append(sorted(by_offset.values(), key=lambda leaf: leaf["offset"]))
    merged = MerklePath(a.block_height, levels)
    if merged.compute_root() != a.compute_root():
        raise ValueError("the paths are not of one block")
    return merged


def build_receipt(store: Ledger, txid: str, vouts: list[int], *, network: str = "local") -> Receipt:
    """The receipt for outputs `vouts` of mined transaction `txid`, which must pay P2PKH
    addresses. Raises NotFound, NotMinedYet, or ValidationError naming a bad vout."""
    tx, _, height = _mined(store, txid)
    if not vouts:
        raise ValidationError("vouts", "must name at least one output")
    outputs: list[PaidOutput] = []
    for vout in dict.fromkeys(vouts):
        if not 0 <= vout < len(tx.outputs):
            raise ValidationError("vouts", f"{vout} is not an output of {txid} (it has {len(tx.outputs)})")
        output = tx.outputs[vout]
        key_hash = p2pkh_hash(output.locking_script.serialize())
        if key_hash is None:
            raise ValidationError("vouts", f"output {vout} of {txid} does not pay a P2PKH address")
        outputs.append(PaidOutput(vout, output.satoshis, p2pkh_address(key_hash, "main")))
    block = store.ledger_block(height)
    if block is None:  # pragma: no cover - a mined transaction's block is written with it
        raise NotMinedYet(txid)
    return Receipt(
        txid, tuple(outputs), build_beef(store, txid), height, block.block_hash, block.header, network
    )
