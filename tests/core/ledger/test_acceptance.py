"""What the ledger accepts and what it refuses, with real signed transactions."""

from __future__ import annotations

import dataclasses

import pytest
from bsv import PrivateKey, Transaction

from asg_grpc.ledger.errors import (
    FeeTooLow,
    InputUnavailable,
    MalformedTransaction,
    ScriptFailed,
    TransactionRejected,
    ValueOutOfRange,
)
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.rules import min_fee
from tests.core.ledger.conftest import FEE_PER_KB, GENESIS_SATS, NOW, build

WORKER = PrivateKey().address()


def funds(ledger: Ledger):
    [utxo] = ledger.spendable()
    return utxo


def test_valid_spend_moves_the_money(ledger: Ledger) -> None:
    utxo = funds(ledger)
    tx = build([utxo], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    txid = ledger.submit(tx.serialize(), NOW)

    assert txid == tx.txid()
    [change] = ledger.spendable()
    assert (change.txid, change.vout) == (txid, 1)
    fee = min_fee(len(tx.serialize()), FEE_PER_KB)
    assert change.satoshis == GENESIS_SATS - 300 - fee
    spent = ledger.store.ledger_outputs([(utxo.txid, utxo.vout)])[(utxo.txid, utxo.vout)]
    assert spent.spent_by == txid
    record = ledger.store.ledger_transaction(txid)
    assert record is not None and record.fee == fee and record.block_height is None


def test_resubmitting_an_accepted_transaction_answers_its_txid(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)
    first = ledger.submit(tx, NOW)

    assert ledger.submit(tx.serialize(), NOW + 1) == first
    assert len(ledger.store.ledger_unmined(10)) == 1


class _StaleFirstRead:
    """The store as a second writer sees it: its first look for the txid comes before the
    first writer's commit, every later read after it."""

    def __init__(self, store: object) -> None:
        self._store = store
        self._looked = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def ledger_transaction(self, txid: str) -> object:
        if not self._looked:
            self._looked = True
            return None
        return self._store.ledger_transaction(txid)  # type: ignore[attr-defined]


def test_a_transaction_another_writer_accepted_meanwhile_is_accepted_not_a_double_spend(
    ledger: Ledger,
) -> None:
    tx = build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)
    first = ledger.submit(tx, NOW)
    racing = Ledger(_StaleFirstRead(ledger.store), ledger.wallet, fee_per_kb=FEE_PER_KB)  # type: ignore[arg-type]

    assert racing.submit(tx.serialize(), NOW) == first


class _StaleOutputs:
    """The store as a second writer sees it when a first writer spends the same output between
    its read of the inputs and its write: the read shows them unspent."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def ledger_outputs(self, outpoints: object) -> object:
        held = self._store.ledger_outputs(outpoints)  # type: ignore[attr-defined]
        return {o: dataclasses.replace(h, spent_by=None) for o, h in held.items()}


def test_a_double_spend_another_writer_committed_meanwhile_is_refused_under_the_lock(
    ledger: Ledger,
) -> None:
    utxo = funds(ledger)
    key, me = ledger.wallet.private_key, ledger.wallet.address
    first = build([utxo], [(WORKER, 300)], key, change_to=me)
    second = build([utxo], [(PrivateKey().address(), 500)], key, change_to=me)
    ledger.submit(first, NOW)
    racing = Ledger(_StaleOutputs(ledger.store), ledger.wallet, fee_per_kb=FEE_PER_KB)  # type: ignore[arg-type]

    with pytest.raises(InputUnavailable, match=f"already spent by {first.txid()}"):
        racing.submit(second, NOW)
    assert ledger.store.ledger_transaction(second.txid()) is None


def test_rejects_an_unknown_input(ledger: Ledger) -> None:
    utxo = funds(ledger)
    ghost = type(utxo)("ab" * 32, 1, utxo.satoshis, utxo.locking_script, None)
    tx = build([ghost], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    with pytest.raises(InputUnavailable, match=f"input 0 spends an unknown output {'ab' * 32}:1"):
        ledger.submit(tx, NOW)


def test_rejects_a_double_spend_and_keeps_the_first(ledger: Ledger) -> None:
    utxo = funds(ledger)
    key, me = ledger.wallet.private_key, ledger.wallet.address
    first = build([utxo], [(WORKER, 300)], key, change_to=me)
    second = build([utxo], [(PrivateKey().address(), 500)], key, change_to=me)
    ledger.submit(first, NOW)

    with pytest.raises(
        InputUnavailable, match=f"input 0 spends {utxo.txid}:0, already spent by {first.txid()}"
    ):
        ledger.submit(second, NOW)
    assert ledger.store.ledger_transaction(second.txid()) is None
    assert [u.txid for u in ledger.spendable()] == [first.txid()]


def test_rejects_a_signature_by_another_key(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 300)], PrivateKey(), change_to=ledger.wallet.address)

    with pytest.raises(ScriptFailed, match="input 0 does not unlock"):
        ledger.submit(tx, NOW)
    assert ledger.store.ledger_transaction(tx.txid()) is None


def test_rejects_a_signature_over_other_outputs(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)
    tx.outputs[0].satoshis = 299  # changed after signing: the signature no longer covers it

    with pytest.raises(ScriptFailed):
        ledger.submit(tx.serialize(), NOW)


def test_rejects_outputs_exceeding_inputs(ledger: Ledger) -> None:
    utxo = funds(ledger)
    tx = build([utxo], [(WORKER, utxo.satoshis + 1)], ledger.wallet.private_key)

    with pytest.raises(ValueOutOfRange, match=f"outputs pay {utxo.satoshis + 1} satoshis but the inputs"):
        ledger.submit(tx, NOW)


def test_fee_exactly_at_policy_is_accepted_and_one_below_is_not(ledger: Ledger) -> None:
    utxo = funds(ledger)
    key, me = ledger.wallet.private_key, ledger.wallet.address
    at_policy = build([utxo], [(WORKER, 300)], key, change_to=me)
    needed = min_fee(len(at_policy.serialize()), FEE_PER_KB)
    assert needed > 0 and at_policy.get_fee() == needed
    below = build([utxo], [(WORKER, 300)], key, change_to=me, fee=needed - 1)
    assert min_fee(len(below.serialize()), FEE_PER_KB) == needed  # same size, one satoshi short

    with pytest.raises(FeeTooLow, match=f"fee is {needed - 1} satoshis; .* need at least {needed}"):
        ledger.submit(below, NOW)
    assert ledger.submit(at_policy, NOW) == at_policy.txid()


def test_the_fee_rate_is_configurable(ledger: Ledger) -> None:
    strict = Ledger(ledger.store, ledger.wallet, fee_per_kb=500)
    tx = build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    with pytest.raises(FeeTooLow):
        strict.submit(tx, NOW)


def test_rejects_an_input_spent_twice_in_one_transaction(ledger: Ledger) -> None:
    utxo = funds(ledger)
    tx = build([utxo, utxo], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    with pytest.raises(MalformedTransaction, match=r"input 1 spends .*, as input 0 does already"):
        ledger.submit(tx, NOW)


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00\x00", bytes.fromhex("deadbeef" * 20)])
def test_rejects_bytes_that_are_not_a_transaction(ledger: Ledger, raw: bytes) -> None:
    with pytest.raises(MalformedTransaction):
        ledger.submit(raw, NOW)


def test_rejects_trailing_bytes(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    with pytest.raises(MalformedTransaction):
        ledger.submit(tx.serialize() + b"\x00", NOW)


def test_rejects_a_zero_output_to_an_address(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 0)], ledger.wallet.private_key, change_to=ledger.wallet.address)

    with pytest.raises(ValueOutOfRange, match="output 0 pays 0 satoshis"):
        ledger.submit(tx, NOW)


def test_rejects_an_output_over_the_money_supply(ledger: Ledger) -> None:
    tx = build([funds(ledger)], [(WORKER, 2**63)], ledger.wallet.private_key)

    with pytest.raises(ValueOutOfRange, match="output 0 pays"):
        ledger.submit(tx, NOW)


def test_rejects_a_transaction_without_inputs(ledger: Ledger) -> None:
    tx = Transaction([], build([funds(ledger)], [(WORKER, 300)], ledger.wallet.private_key).outputs)

    with pytest.raises(MalformedTransaction, match="has no inputs"):
        ledger.submit(tx, NOW)


def test_a_rejection_is_a_validation_error_naming_the_transaction(ledger: Ledger) -> None:
    from asg_grpc.domain.errors import ValidationError

    with pytest.raises(TransactionRejected) as caught:
        ledger.submit(b"", NOW)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.message.startswith("transaction rejected: ")


def test_spending_unmined_change_is_accepted(ledger: Ledger) -> None:
    key, me = ledger.wallet.private_key, ledger.wallet.address
    first = build([funds(ledger)], [(WORKER, 300)], key, change_to=me)
    ledger.submit(first, NOW)
    second = build(ledger.spendable(), [(WORKER, 300)], key, change_to=me)

    assert ledger.submit(second, NOW) == second.txid()


def test_a_batch_with_many_outputs_is_accepted_quickly(ledger: Ledger) -> None:
    import time

    pays = [(PrivateKey().address(), 300) for _ in range(500)]
    tx = build([funds(ledger)], pays, ledger.wallet.private_key, change_to=ledger.wallet.address)
    started = time.perf_counter()
    ledger.submit(tx, NOW)
    elapsed = time.perf_counter() - started

    assert len(ledger.store.ledger_outputs([(tx.txid(), v) for v in range(501)])) == 501
    assert elapsed < 0.5, f"a 500-output transaction took {elapsed:.3f} s to accept"
