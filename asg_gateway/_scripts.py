"""Whether a transaction input unlocks the output it spends: the one script rule, shared by the
SDK's offline receipt check and the core's local ledger (``asg_grpc.ledger.rules``).

It lives in the SDK because the SDK must install and run on its own (httpx and bsv-sdk, no
grpc); the ledger imports this module and nothing else of the SDK (tests/core/test_layering.py).
"""

from __future__ import annotations

from bsv import Script, Transaction, TransactionInput
from bsv.script.spend import Spend


def unlock_failure(tx: Transaction, index: int, satoshis: int, locking_script: Script) -> str | None:
    """Why input ``index`` of ``tx`` fails to unlock the output it spends (``satoshis`` locked
    by ``locking_script``), or ``None`` when it unlocks it, by bsv-sdk's interpreter.

    The other inputs go into the signature hash by outpoint and sequence only, so each is passed
    as a bare copy; the cost is linear in the inputs per call."""
    tx_input = tx.inputs[index]
    others = [
        TransactionInput(
            source_txid=other.source_txid,
            source_output_index=other.source_output_index,
            unlocking_script=other.unlocking_script,
            sequence=other.sequence,
        )
        for position, other in enumerate(tx.inputs)
        if position != index
    ]
    try:
        ok = Spend(
            {
                "sourceTXID": tx_input.source_txid,
                "sourceOutputIndex": tx_input.source_output_index,
                "sourceSatoshis": satoshis,
                "lockingScript": locking_script,
                "transactionVersion": tx.version,
                "otherInputs": others,
                "inputIndex": index,
                "unlockingScript": tx_input.unlocking_script or Script(b""),
                "outputs": tx.outputs,
                "inputSequence": tx_input.sequence,
                "lockTime": tx.locktime,
            }
        ).validate()
    except Exception as exc:  # the interpreter signals failure with RuntimeError, garbage with others
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None if ok else "the script left false on the stack"
