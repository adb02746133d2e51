"""Offline verification of a payout receipt from the ASG Refinery ledger.

A receipt (docs/ledger.md) carries the payout transaction as BEEF, the outputs it claims pay an
address, and the header of the block that holds the transaction. Verification needs no network
and trusts nothing in the receipt: only the block headers the caller supplies (a mapping of
height to header hex, or a bsv-sdk ChainTracker). Every check that fails raises ReceiptInvalid
naming what failed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from bsv import P2PKH, ChainTracker, MerklePath, Transaction
from bsv.utils import Reader

from ._errors import ASGError, ReceiptInvalid
from ._scripts import unlock_failure

BEEF_V1 = 4022206465  # BRC-62 version 1: the bytes 01 00 be ef on the wire
HEADER_BYTES = 80

Headers: TypeAlias = "Mapping[int, str] | ChainTracker"


@dataclass(frozen=True, slots=True)
class VerifiedOutput:
    vout: int
    satoshis: int
    address: str


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a receipt proved: these outputs of `txid`, in block `block_hash` at `block_height`."""

    txid: str
    block_height: int
    block_hash: str
    outputs: tuple[VerifiedOutput, ...]

    @property
    def total_satoshis(self) -> int:
        return sum(o.satoshis for o in self.outputs)


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _field(document: Mapping[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = document.get(name) if isinstance(document, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReceiptInvalid(f"receipt field {where}{name} is missing or not a {kind.__name__}")
    return value


def _hex(text: str, name: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ReceiptInvalid(f"receipt field {name} is not hex") from None


def _read_beef(data: bytes) -> tuple[list[MerklePath], list[tuple[Transaction, int | None]]]:
    """BEEF v1 (BRC-62): the merkle paths, then each transaction with its path index, if any."""
    reader = Reader(data)
    if reader.read_uint32_le() != BEEF_V1:
        raise ReceiptInvalid("beef is not BEEF version 1")
    bumps = [MerklePath.from_reader(reader) for _ in range(reader.read_var_int_num())]
    txs: list[tuple[Transaction, int | None]] = []
    for _ in range(reader.read_var_int_num()):
        tx = Transaction.from_reader(reader)
        flag = reader.read_uint8()
        index = reader.read_var_int_num() if flag else None
        if index is not None and not 0 <= index < len(bumps):
            raise ReceiptInvalid(f"beef names merkle path {index}, it holds {len(bumps)}")
        txs.append((tx, index))
    if reader.tell() != len(data):
        raise ReceiptInvalid("beef has bytes after its last transaction")
    if not txs:
        raise ReceiptInvalid("beef holds no transaction")
    return bumps, txs


def _check_input_scripts(tx: Transaction, sources: Mapping[str, Transaction]) -> None:
    """Each input whose source transaction the BEEF carries must unlock the output it spends."""
    for index, tx_input in enumerate(tx.inputs):
        source = sources.get(tx_input.source_txid)
        if source is None:
            continue
        if tx_input.source_output_index >= len(source.outputs):
            raise ReceiptInvalid(f"input {index} spends a missing output of {tx_input.source_txid}")
        spent = source.outputs[tx_input.source_output_index]
        if unlock_failure(tx, index, spent.satoshis, spent.locking_script) is not None:
            raise ReceiptInvalid(f"input {index} of the payout does not unlock the output it spends")


@dataclass(frozen=True, slots=True)
class _Checked:
    """A receipt checked in itself; what remains is to match its header against the caller's."""

    receipt: VerifiedReceipt
    header_hex: str
    merkle_root: str


def _check(receipt: Mapping[str, Any]) -> _Checked:
    """Everything that needs no header from the caller: BEEF, txid, scripts, outputs, proof."""
    if not isinstance(receipt, Mapping):
        raise ReceiptInvalid("receipt is not a JSON object")
    txid = _field(receipt, "txid", str)
    block = _field(receipt, "block", Mapping)
    height = _field(block, "height", int, "block.")
    block_hash = _field(block, "hash", str, "block.")
    header = _hex(_field(block, "header", str, "block."), "block.header")
    claimed = _field(receipt, "outputs", list)
    if not claimed:
        raise ReceiptInvalid("receipt claims no outputs")
    try:
        bumps, txs = _read_beef(_hex(_field(receipt, "beef", str), "beef"))
    except ReceiptInvalid:
        raise
    except Exception as exc:  # bsv-sdk raises assorted errors on garbage
        raise ReceiptInvalid(f"beef does not parse: {exc}") from exc
    tx, bump_index = txs[-1]
    if tx.txid() != txid:
        raise ReceiptInvalid(f"beef holds transaction {tx.txid()}, the receipt names {txid}")
    _check_input_scripts(tx, {source.txid(): source for source, _ in txs[:-1]})

    outputs: list[VerifiedOutput] = []
    for position, item in enumerate(claimed):
        where = f"outputs[{position}]."
        vout = _field(item, "vout", int, where)
        satoshis = _field(item, "satoshis", int, where)
        address = _field(item, "address", str, where)
        if not 0 <= vout < len(tx.outputs):
            raise ReceiptInvalid(f"vout {vout} is not an output of {txid}")
        if any(seen.vout == vout for seen in outputs):
            raise ReceiptInvalid(f"vout {vout} is listed twice (it would be counted twice)")
        output = tx.outputs[vout]
        if output.satoshis != satoshis:
            raise ReceiptInvalid(
                f"vout {vout} pays {output.satoshis} satoshis, the receipt claims {satoshis}"
            )
        try:
            expected = P2PKH().lock(address).serialize()
        except Exception:
            raise ReceiptInvalid(f"{where}address {address!r} is not a P2PKH address") from None
        if output.locking_script.serialize() != expected:
            raise ReceiptInvalid(f"vout {vout} does not pay {address}")
        outputs.append(VerifiedOutput(vout, satoshis, address))

    if bump_index is None:
        raise ReceiptInvalid("beef carries no merkle path for the payout transaction")
    path = bumps[bump_index]
    if path.block_height != height:
        raise ReceiptInvalid(f"merkle path is for block {path.block_height}, the receipt names {height}")
    try:
        root = path.compute_root(txid)
    except Exception as exc:
        raise ReceiptInvalid(f"merkle path does not prove {txid}: {exc}") from exc
    if len(header) != HEADER_BYTES:
        raise ReceiptInvalid(f"block header is {len(header)} bytes, not {HEADER_BYTES}")
    if header[36:68][::-1].hex() != root:
        raise ReceiptInvalid("merkle path does not lead to the merkle root of the block header")
    if _sha256d(header)[::-1].hex() != block_hash.lower():
        raise ReceiptInvalid(f"block header does not hash to block {block_hash}")
    verified = VerifiedReceipt(txid, height, block_hash.lower(), tuple(outputs))
    return _Checked(verified, header.hex(), root)


def _match_header(checked: _Checked, headers: Mapping[int, str]) -> VerifiedReceipt:
    height = checked.receipt.block_height
    known = headers.get(height)
    if known is None:
        raise ReceiptInvalid(f"no trusted header for block {height}")
    if known.lower() != checked.header_hex:
        raise ReceiptInvalid(f"block header differs from the trusted header at height {height}")
    return checked.receipt


def verify_receipt_document(receipt: Mapping[str, Any], headers: Headers) -> VerifiedReceipt:
    """Check a receipt offline against trusted headers (height → 80-byte header hex) or a
    bsv-sdk ChainTracker. Raises ReceiptInvalid naming the first check that failed.

    With a ChainTracker, call this outside a running event loop (it runs the tracker's
    coroutine), or use `averify_receipt_document`."""
    checked = _check(receipt)
    if isinstance(headers, ChainTracker):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_ask_tracker(checked, headers))
        raise ASGError("inside an event loop, use averify_receipt_document with a ChainTracker")
    return _match_header(checked, headers)


async def averify_receipt_document(receipt: Mapping[str, Any], headers: Headers) -> VerifiedReceipt:
    """`verify_receipt_document` for async code (a ChainTracker's methods are coroutines)."""
    checked = _check(receipt)
    if isinstance(headers, ChainTracker):
        return await _ask_tracker(checked, headers)
    return _match_header(checked, headers)


async def _ask_tracker(checked: _Checked, tracker: ChainTracker) -> VerifiedReceipt:
    height = checked.receipt.block_height
    if not await tracker.is_valid_root_for_height(checked.merkle_root, height):
        raise ReceiptInvalid(f"the chain tracker does not know merkle root {checked.merkle_root} at {height}")
    return checked.receipt


class HeadersChainTracker(ChainTracker):
    """bsv-sdk's ChainTracker over trusted headers (height → header hex), for
    `Transaction.verify` and `MerklePath.verify` without a network."""

    def __init__(self, headers: Mapping[int, str]) -> None:
        self._roots = {height: bytes.fromhex(h)[36:68][::-1].hex() for height, h in headers.items()}

    async def is_valid_root_for_height(self, root: str, height: int) -> bool:
        return self._roots.get(height) == root

    async def current_height(self) -> int:
        return max(self._roots, default=0)
