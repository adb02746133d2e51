"""The ledger tables under two connections to one file, as two core processes would have."""

from __future__ import annotations

from bsv import PrivateKey

from asg_grpc.ledger.ledger import Ledger
from asg_grpc.store.ledger_records import LedgerOutput, NewLedgerTx
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.ledger.conftest import NOW, build


def record(tx_bytes: bytes, txid: str, inputs: list[tuple[str, int]]) -> NewLedgerTx:
    return NewLedgerTx(txid, tx_bytes, 1, "tx", inputs, [(300, b"\x76")])


def test_of_two_writers_spending_one_output_exactly_one_wins(ledger: Ledger) -> None:
    other = SQLiteStore(ledger.store.path)  # type: ignore[attr-defined]
    try:
        [utxo] = ledger.spendable()
        key, me = ledger.wallet.private_key, ledger.wallet.address
        first = build([utxo], [(PrivateKey().address(), 300)], key, change_to=me)
        second = build([utxo], [(PrivateKey().address(), 500)], key, change_to=me)
        outpoint = (utxo.txid, utxo.vout)
        # Both passed their checks against a read before either wrote; the store decides.
        assert ledger.store.ledger_accept(record(first.serialize(), first.txid(), [outpoint]), NOW) == []

        conflicts = other.ledger_accept(record(second.serialize(), second.txid(), [outpoint]), NOW)

        spent = LedgerOutput(utxo.txid, utxo.vout, utxo.satoshis, utxo.locking_script, first.txid())
        assert conflicts == [spent]
        assert other.ledger_transaction(second.txid()) is None
        assert other.ledger_outputs([(second.txid(), 0)]) == {}
    finally:
        other.close()


def test_an_accept_with_one_unknown_input_writes_nothing(ledger: Ledger) -> None:
    [utxo] = ledger.spendable()
    inputs = [(utxo.txid, utxo.vout), ("cd" * 32, 0)]

    conflicts = ledger.store.ledger_accept(record(b"raw", "ef" * 32, inputs), NOW)

    assert conflicts == [("cd" * 32, 0)]
    assert ledger.store.ledger_outputs([(utxo.txid, utxo.vout)])[(utxo.txid, utxo.vout)].spent_by is None
    assert ledger.store.ledger_transaction("ef" * 32) is None
