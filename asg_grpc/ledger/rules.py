"""Acceptance rules of the local ledger, as pure functions over a parsed transaction and the
outputs it spends (looked up by the caller). Each refusal raises a TransactionRejected subclass
whose reason names the offending input or output.

The checks run cheapest first: shape, inputs available, amounts, fee, then the scripts (bsv-sdk's
interpreter, `Spend`). bsv-sdk itself does not check that outputs plus fee fit in the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bsv import Script, Transaction

from asg_gateway._scripts import unlock_failure
from asg_grpc.domain.settlement import MAX_MONEY
from asg_grpc.ledger.errors import (
    FeeTooLow,
    InputUnavailable,
    MalformedTransaction,
    ScriptFailed,
    ValueOutOfRange,
)

NULL_TXID = "00" * 32
Outpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Spendable:
    """An output as the ledger holds it; `spent_by` is the txid that spent it, if any."""

    satoshis: int
    locking_script: bytes
    spent_by: str | None = None


def min_fee(size: int, fee_per_kb: int) -> int:
    """The policy fee for `size` serialized bytes: fee_per_kb per 1000 bytes, rounded up."""
    return (size * fee_per_kb + 999) // 1000


def parse(raw: bytes) -> Transaction:
    """Exactly one transaction in canonical encoding (it serializes back to the same bytes)."""
    try:
        tx = Transaction.from_hex(raw)
        same = tx is not None and tx.serialize() == raw
    except Exception as exc:  # bsv-sdk raises assorted errors on garbage
        raise MalformedTransaction(f"bytes do not parse as a transaction ({exc})") from exc
    if tx is None or not same:
        raise MalformedTransaction("bytes are not exactly one transaction in canonical encoding")
    return tx


def _is_data_carrier(script: bytes) -> bool:
    return script[:1] == b"\x6a" or script[:2] == b"\x00\x6a"  # OP_RETURN, OP_FALSE OP_RETURN


def check_shape(tx: Transaction) -> list[Outpoint]:
    """Inputs and outputs present, no input twice, no null outpoint, amounts in range.

    Returns the outpoints the inputs spend, in input order."""
    if not tx.inputs:
        raise MalformedTransaction("has no inputs")
    if not tx.outputs:
        raise MalformedTransaction("has no outputs")
    outpoints: list[Outpoint] = []
    seen: dict[Outpoint, int] = {}
    for index, tx_input in enumerate(tx.inputs):
        outpoint = (tx_input.source_txid, tx_input.source_output_index)
        if outpoint[0] == NULL_TXID:
            raise MalformedTransaction(f"input {index} spends the null outpoint (only a coinbase may)")
        if outpoint in seen:
            raise MalformedTransaction(
                f"input {index} spends {outpoint[0]}:{outpoint[1]}, as input {seen[outpoint]} does already"
            )
        seen[outpoint] = index
        outpoints.append(outpoint)
    total = 0
    for index, output in enumerate(tx.outputs):
        sats = output.satoshis
        if sats < 0 or sats > MAX_MONEY:
            raise ValueOutOfRange(f"output {index} pays {sats} satoshis, outside 0..{MAX_MONEY}")
        if sats == 0 and not _is_data_carrier(output.locking_script.serialize()):
            raise ValueOutOfRange(f"output {index} pays 0 satoshis to a spendable script")
        total += sats
    if total > MAX_MONEY:
        raise ValueOutOfRange(f"outputs pay {total} satoshis in all, more than {MAX_MONEY}")
    return outpoints


def check_spend(
    tx: Transaction,
    size: int,
    outpoints: list[Outpoint],
    spent: Mapping[Outpoint, Spendable],
    fee_per_kb: int,
) -> int:
    """Every input available and unlocked, outputs + fee within the inputs. Returns the fee."""
    for index, outpoint in enumerate(outpoints):
        held = spent.get(outpoint)
        if held is None:
            raise InputUnavailable(f"input {index} spends an unknown output {outpoint[0]}:{outpoint[1]}")
        if held.spent_by is not None:
            raise InputUnavailable(
                f"input {index} spends {outpoint[0]}:{outpoint[1]}, already spent by {held.spent_by}"
            )
    value_in = sum(spent[o].satoshis for o in outpoints)
    value_out = sum(o.satoshis for o in tx.outputs)
    if value_out > value_in:
        raise ValueOutOfRange(f"outputs pay {value_out} satoshis but the inputs hold only {value_in}")
    fee = value_in - value_out
    needed = min_fee(size, fee_per_kb)
    if fee < needed:
        raise FeeTooLow(f"fee is {fee} satoshis; {size} bytes at {fee_per_kb} sat/kB need at least {needed}")
    check_scripts(tx, outpoints, spent)
    return fee


def check_scripts(tx: Transaction, outpoints: list[Outpoint], spent: Mapping[Outpoint, Spendable]) -> None:
    """Run each input's unlocking script against the locking script it spends (bsv-sdk Spend).

    Each input's check lists the other inputs, so the cost grows with inputs squared; payout
    transactions have a handful of inputs and many outputs, which cost linearly."""
    for index, outpoint in enumerate(outpoints):
        held = spent[outpoint]
        problem = unlock_failure(tx, index, held.satoshis, Script(held.locking_script))
        if problem is not None:
            spends = f"{outpoint[0]}:{outpoint[1]}"
            raise ScriptFailed(f"input {index} does not unlock {spends}: {problem}")
