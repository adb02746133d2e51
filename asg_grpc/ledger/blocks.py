"""Blocks of the local ledger: coinbase, merkle tree, 80-byte header, BUMP merkle paths.

Pure functions. Hashes inside headers and the tree are in internal byte order; txids, block
hashes and merkle roots outside are display hex (byte-reversed), as bsv-sdk's MerklePath and
ChainTracker expect. Headers carry `bits` = 0x207fffff (regtest's easiest target) and nonce 0:
there is no proof of work on a ledger the platform runs alone, so none is computed or checked.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from bsv import MerklePath, Script, Transaction, TransactionInput, TransactionOutput
from bsv.utils import encode_pushdata

from asg_grpc.ledger.rules import NULL_TXID

HEADER_VERSION = 1
BITS = 0x207FFFFF
NULL_HASH = "00" * 32
COINBASE_TAG = b"/asg-refinery local ledger/"
GENESIS_TAG = b"/asg-refinery genesis/"


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _null_input(script: bytes) -> TransactionInput:
    return TransactionInput(
        source_txid=NULL_TXID,
        source_output_index=0xFFFFFFFF,
        unlocking_script=Script(script),
        sequence=0xFFFFFFFF,
    )


def coinbase(height: int) -> Transaction:
    """The first transaction of block `height`: the height in its input (BIP34, which also makes
    its txid unique) and one 0-satoshi data output. Fees are not collected: they are burnt."""
    script = encode_pushdata(height.to_bytes(4, "little")) + encode_pushdata(COINBASE_TAG)
    marker = Script(b"\x00\x6a" + encode_pushdata(COINBASE_TAG))
    return Transaction([_null_input(script)], [TransactionOutput(marker, 0)])


def genesis(locking_script: Script, satoshis: int) -> Transaction:
    """The one transaction that creates money: coinbase-shaped, paying the platform wallet."""
    return Transaction(
        [_null_input(encode_pushdata(GENESIS_TAG))], [TransactionOutput(locking_script, satoshis)]
    )


def merkle_levels(txids: list[str]) -> list[list[bytes]]:
    """The tree from the leaves (display-hex txids) up to the root, Bitcoin's way: a level with
    an odd count pairs its last node with itself."""
    if not txids:
        raise ValueError("a block holds at least one transaction")
    level = [bytes.fromhex(t)[::-1] for t in txids]
    levels = [level]
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(levels: list[list[bytes]]) -> str:
    return levels[-1][0][::-1].hex()


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def merkle_path_bytes(levels: list[list[bytes]], index: int, height: int) -> bytes:
    """The BUMP (BRC-74, binary) proving leaf `index` of the tree `levels` in block `height`:
    at each level the sibling's hash, or the duplicate flag where the level had no node to pair
    with. Written directly (bsv-sdk's MerklePath validates on construction, ~0.3 ms a path,
    too slow for thousands per block); `MerklePath.from_binary` reads it back.

    A one-leaf block has no path (its root is the txid); mined blocks always hold a coinbase
    and at least one other transaction."""
    if len(levels) < 2:
        raise ValueError("a one-transaction block has no merkle path")
    out = [_varint(height), bytes([len(levels) - 1])]
    for depth, level in enumerate(levels[:-1]):
        position = index >> depth
        sibling = position ^ 1
        entries: list[tuple[int, bytes]] = []
        if depth == 0:
            entries.append((position, b"\x02" + level[position]))  # flag 2: the txid itself
        if sibling < len(level):
            entries.append((sibling, b"\x00" + level[sibling]))
        else:
            entries.append((sibling, b"\x01"))  # flag 1: duplicate of the working hash
        entries.sort()
        out.append(_varint(len(entries)))
        out.extend(_varint(offset) + body for offset, body in entries)
    return b"".join(out)


def merkle_path(levels: list[list[bytes]], index: int, height: int) -> MerklePath:
    """`merkle_path_bytes` as bsv-sdk's MerklePath (validated as it is built)."""
    return MerklePath.from_binary(merkle_path_bytes(levels, index, height))


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    prev_hash: str
    merkle_root: str
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return (
            struct.pack("<I", self.version)
            + bytes.fromhex(self.prev_hash)[::-1]
            + bytes.fromhex(self.merkle_root)[::-1]
            + struct.pack("<III", self.time, self.bits, self.nonce)
        )

    @property
    def hash(self) -> str:
        return sha256d(self.serialize())[::-1].hex()

    @classmethod
    def parse(cls, raw: bytes) -> Header:
        if len(raw) != 80:
            raise ValueError(f"a block header is 80 bytes, got {len(raw)}")
        (version,) = struct.unpack_from("<I", raw, 0)
        time, bits, nonce = struct.unpack_from("<III", raw, 68)
        return cls(version, raw[4:36][::-1].hex(), raw[36:68][::-1].hex(), time, bits, nonce)
