"""The local ledger's tables of the SQLite store: transactions, outputs (the UTXO set with
spent markers), blocks, and each mined transaction's merkle path.

Every method
that changes more than one row is one transaction: an accepted transaction's inputs, outputs
and row, or a block with its coinbase and the merkle paths of its transactions.
"""

from __future__ import annotations

import sqlite3

from asg_grpc.store.ledger_records import LedgerBlock, LedgerOutput, LedgerTx, NewLedgerTx, Outpoint
from asg_grpc.store.sqlite.area import Area, chunks

_CHUNK = 400  # outpoints per query: two parameters each, under SQLite's 999-parameter floor
_TX_COLUMNS = "txid, raw, fee, kind, accepted_at, block_height, merkle_path"
_BLOCK_COLUMNS = "height, block_hash, header, merkle_root, time, tx_count"


class _Conflicting(Exception):
    """Rolls a block back: one of its transactions was mined meanwhile."""


class SQLiteLedger(Area):
    """The local ledger: transactions, the UTXO set, blocks."""

    @staticmethod
    def _outputs(db: sqlite3.Connection, outpoints: list[Outpoint]) -> dict[Outpoint, LedgerOutput]:
        found: dict[Outpoint, LedgerOutput] = {}
        for chunk in chunks(outpoints, _CHUNK):
            rows = ",".join("(?,?)" for _ in chunk)
            args = [v for outpoint in chunk for v in outpoint]
            for row in db.execute(
                "SELECT txid, vout, satoshis, locking_script, spent_by FROM ledger_outputs"
                f" WHERE (txid, vout) IN (VALUES {rows})",
                args,
            ):
                found[(row[0], row[1])] = LedgerOutput(*row)
        return found

    def ledger_outputs(self, outpoints: list[Outpoint]) -> dict[Outpoint, LedgerOutput]:
        return self._outputs(self._db, outpoints)

    def ledger_unspent(self, locking_script: bytes, limit: int) -> list[LedgerOutput]:
        rows = self._db.execute(
            "SELECT txid, vout, satoshis, locking_script, spent_by FROM ledger_outputs"
            " WHERE locking_script = ? AND spent_by IS NULL ORDER BY satoshis DESC LIMIT ?",
            (locking_script, limit),
        ).fetchall()
        return [LedgerOutput(*r) for r in rows]

    def ledger_transaction(self, txid: str) -> LedgerTx | None:
        row = self._db.execute(
            f"SELECT {_TX_COLUMNS} FROM ledger_transactions WHERE txid = ?", (txid,)
        ).fetchone()
        return LedgerTx(*row) if row else None

    @staticmethod
    def _insert_tx(db: sqlite3.Connection, tx: NewLedgerTx, now: float, height: int | None = None) -> None:
        db.execute(
            "INSERT INTO ledger_transactions (txid, raw, fee, kind, accepted_at, block_height)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (tx.txid, tx.raw, tx.fee, tx.kind, now, height),
        )
        db.executemany(
            "INSERT INTO ledger_outputs (txid, vout, satoshis, locking_script) VALUES (?, ?, ?, ?)",
            # 0-satoshi outputs (data carriers, the only ones the rules allow) are never spendable
            [(tx.txid, vout, sats, script) for vout, (sats, script) in enumerate(tx.outputs) if sats],
        )

    def ledger_accept(self, tx: NewLedgerTx, now: float) -> list[LedgerOutput | Outpoint]:
        """Record `tx` and spend its inputs, all or nothing.

        Returns [] when it is recorded (now, or already before: same txid), otherwise the
        inputs that were unknown (an Outpoint) or spent by another transaction (a LedgerOutput),
        with nothing written. The check runs under the write lock, so of two transactions
        spending one output exactly one is recorded, whichever process submits them."""
        with self._conn.write() as db:
            if db.execute("SELECT 1 FROM ledger_transactions WHERE txid = ?", (tx.txid,)).fetchone():
                return []
            held = self._outputs(db, tx.inputs)
            bad: list[LedgerOutput | Outpoint] = []
            for outpoint in tx.inputs:
                output = held.get(outpoint)
                if output is None:
                    bad.append(outpoint)
                elif output.spent_by is not None:
                    bad.append(output)
            if bad:
                return bad
            db.executemany(
                "UPDATE ledger_outputs SET spent_by = ? WHERE txid = ? AND vout = ?",
                [(tx.txid, txid, vout) for txid, vout in tx.inputs],
            )
            self._insert_tx(db, tx, now)
        return []

    def ledger_record_genesis(self, tx: NewLedgerTx, now: float) -> str:
        """Record the genesis transaction unless the ledger has one; the genesis txid either way."""
        with self._conn.write() as db:
            row = db.execute("SELECT txid FROM ledger_transactions WHERE kind = 'genesis'").fetchone()
            if row:
                return str(row[0])
            self._insert_tx(db, tx, now)
        return tx.txid

    def ledger_unmined(self, limit: int) -> list[str]:
        """Txids accepted, not yet mined, in acceptance order (a parent always before its children)."""
        rows = self._db.execute(
            "SELECT txid FROM ledger_transactions WHERE block_height IS NULL ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [r[0] for r in rows]

    def ledger_tip(self) -> LedgerBlock | None:
        row = self._db.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM ledger_blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        return LedgerBlock(*row) if row else None

    def ledger_block(self, height: int) -> LedgerBlock | None:
        row = self._db.execute(
            f"SELECT {_BLOCK_COLUMNS} FROM ledger_blocks WHERE height = ?", (height,)
        ).fetchone()
        return LedgerBlock(*row) if row else None

    def ledger_add_block(
        self, block: LedgerBlock, coinbase: NewLedgerTx, paths: list[tuple[str, bytes]]
    ) -> bool:
        """Append `block` with its coinbase, and mark each (txid, merkle path) mined in it.

        False, with nothing written, when the block does not extend the tip (another process
        mined first) or one of the transactions is mined already."""
        try:
            with self._conn.write() as db:
                tip = db.execute(
                    "SELECT height, block_hash FROM ledger_blocks ORDER BY height DESC LIMIT 1"
                ).fetchone()
                expected = 0 if tip is None else tip[0] + 1
                if block.height != expected:
                    return False
                db.execute(
                    f"INSERT INTO ledger_blocks ({_BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        block.height,
                        block.block_hash,
                        block.header,
                        block.merkle_root,
                        block.time,
                        block.tx_count,
                    ),
                )
                self._insert_tx(db, coinbase, float(block.time), block.height)
                marked = db.executemany(
                    "UPDATE ledger_transactions SET block_height = ?, merkle_path = ?"
                    " WHERE txid = ? AND (block_height IS NULL OR txid = ?)",
                    [(block.height, path, txid, coinbase.txid) for txid, path in paths],
                ).rowcount
                if marked != len(paths):
                    raise _Conflicting()
        except _Conflicting:
            return False
        return True
