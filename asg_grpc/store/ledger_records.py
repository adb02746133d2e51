"""What the ledger tables hold and return: plain records, no bsv-sdk objects (the store keeps
raw bytes; the ledger package parses them)."""

from __future__ import annotations

from dataclasses import dataclass

Outpoint = tuple[str, int]  # display-hex txid, output index


@dataclass(frozen=True, slots=True)
class LedgerOutput:
    txid: str
    vout: int
    satoshis: int
    locking_script: bytes
    spent_by: str | None  # the txid that spent it; None while unspent


@dataclass(frozen=True, slots=True)
class NewLedgerTx:
    """A transaction the ledger accepted, with what it spends and creates."""

    txid: str
    raw: bytes
    fee: int
    kind: str  # "tx", "genesis" or "coinbase"
    inputs: list[Outpoint]
    # (satoshis, locking script) by vout; 0-satoshi (data) outputs are not stored as spendable
    outputs: list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class LedgerTx:
    txid: str
    raw: bytes
    fee: int
    kind: str
    accepted_at: float
    block_height: int | None  # None until mined
    merkle_path: bytes | None  # BUMP (BRC-74) binary, once mined


@dataclass(frozen=True, slots=True)
class LedgerBlock:
    height: int
    block_hash: str
    header: bytes  # the 80 bytes
    merkle_root: str
    time: int
    tx_count: int
