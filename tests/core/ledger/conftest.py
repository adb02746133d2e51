"""A real ledger over a real SQLite file, a funded platform wallet, and helpers that build and
sign real bsv-sdk transactions."""

from __future__ import annotations

import pytest
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput

from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.rules import min_fee
from asg_grpc.ledger.wallet import Wallet
from asg_grpc.store.ledger_records import LedgerOutput
from asg_grpc.store.sqlite import SQLiteStore

GENESIS_SATS = 10_000_000
FEE_PER_KB = 100
NOW = 1_700_000_000.0


@pytest.fixture
def ledger(store: SQLiteStore, wallet: Wallet) -> Ledger:
    """Funded by its genesis transaction, mined into block 0."""
    ledger = Ledger(store, wallet, fee_per_kb=FEE_PER_KB)
    ledger.ensure_genesis(GENESIS_SATS, NOW)
    assert ledger.mine(NOW) is not None
    return ledger


def source_for(output: LedgerOutput) -> Transaction:
    """A stand-in source transaction whose output `output.vout` is `output`, so bsv-sdk's
    signer knows the amount and script it signs for (the txid comes from the outpoint)."""
    placeholders = [TransactionOutput(Script(b"\x6a"), 0) for _ in range(output.vout)]
    return Transaction([], [*placeholders, TransactionOutput(Script(output.locking_script), output.satoshis)])


def build(
    spends: list[LedgerOutput],
    pays: list[tuple[str, int]],
    key: PrivateKey,
    *,
    change_to: str | None = None,
    fee: int | None = None,
    fee_per_kb: int = FEE_PER_KB,
) -> Transaction:
    """Spend `spends` (locked to `key`) paying (address, sats) each, the rest as change to
    `change_to` less `fee` (default: exactly the policy fee of the signed size)."""
    inputs = []
    for output in spends:
        tx_input = TransactionInput(
            source_transaction=source_for(output),
            source_txid=output.txid,
            source_output_index=output.vout,
            unlocking_script_template=P2PKH().unlock(key),
        )
        inputs.append(tx_input)
    outputs = [TransactionOutput(P2PKH().lock(address), sats) for address, sats in pays]
    if change_to is None:
        tx = Transaction(inputs, outputs)
        tx.sign()
        return tx
    total_in = sum(o.satoshis for o in spends)
    total_out = sum(s for _, s in pays)
    guess = 0 if fee is None else fee
    for _ in range(5):  # the signature's length moves the size, and so the policy fee, by a byte
        change = TransactionOutput(P2PKH().lock(change_to), total_in - total_out - guess)
        tx = Transaction(
            [
                TransactionInput(
                    source_transaction=i.source_transaction,
                    source_txid=i.source_txid,
                    source_output_index=i.source_output_index,
                    unlocking_script_template=P2PKH().unlock(key),
                )
                for i in inputs
            ],
            [*outputs, change],
        )
        tx.sign()
        if fee is not None:
            return tx
        needed = min_fee(len(tx.serialize()), fee_per_kb)
        if needed == guess:
            return tx
        guess = needed
    raise AssertionError("fee did not settle")
