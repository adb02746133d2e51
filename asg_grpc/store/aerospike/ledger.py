"""The local ledger of an Aerospike deployment: kept single-writer, in a SQLite file beside the
cores (docs/storage-aerospike.md, The ledger).

The local ledger is the stand-in for the BSV network (`ASG_BSV_NETWORK=local`); production pays
through ARC and never writes it. Spending outputs and appending blocks are multi-row changes
that SQLite makes in one transaction, and its file lock is the single-writer enforcement: of
the core processes on one host sharing the file, exactly one writes at a time, and every one
reads the same chain (the chain API is served by every core). A core on another host cannot
share it; the deploy docs say to run ARC there.
"""

from __future__ import annotations

from pathlib import Path

from asg_grpc.store.ledger_records import LedgerBlock, LedgerOutput, LedgerTx, NewLedgerTx, Outpoint
from asg_grpc.store.sqlite.ledger import SQLiteLedger


class SharedLedger:
    """The Store protocol's ledger methods, answered by the SQLite store at `path`."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        from asg_grpc.store.sqlite import SQLiteStore

        path.parent.mkdir(parents=True, exist_ok=True)
        self._ledger: SQLiteLedger = SQLiteStore(path, busy_timeout=busy_timeout)

    def ledger_outputs(self, outpoints: list[Outpoint]) -> dict[Outpoint, LedgerOutput]:
        return self._ledger.ledger_outputs(outpoints)

    def ledger_unspent(self, locking_script: bytes, limit: int) -> list[LedgerOutput]:
        return self._ledger.ledger_unspent(locking_script, limit)

    def ledger_transaction(self, txid: str) -> LedgerTx | None:
        return self._ledger.ledger_transaction(txid)

    def ledger_accept(self, tx: NewLedgerTx, now: float) -> list[LedgerOutput | Outpoint]:
        return self._ledger.ledger_accept(tx, now)

    def ledger_record_genesis(self, tx: NewLedgerTx, now: float) -> str:
        return self._ledger.ledger_record_genesis(tx, now)

    def ledger_unmined(self, limit: int) -> list[str]:
        return self._ledger.ledger_unmined(limit)

    def ledger_tip(self) -> LedgerBlock | None:
        return self._ledger.ledger_tip()

    def ledger_block(self, height: int) -> LedgerBlock | None:
        return self._ledger.ledger_block(height)

    def ledger_add_block(
        self, block: LedgerBlock, coinbase: NewLedgerTx, paths: list[tuple[str, bytes]]
    ) -> bool:
        return self._ledger.ledger_add_block(block, coinbase, paths)

    def close_ledger(self) -> None:
        self._ledger.close()  # type: ignore[attr-defined]
