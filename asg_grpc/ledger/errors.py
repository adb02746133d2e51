"""Why the local ledger refused a transaction: one class per cause the settler may act on.

DomainError (asg_grpc.domain.errors)
└── ValidationError                  INVALID_ARGUMENT at the gRPC edge
    └── TransactionRejected          root; `reason` says what is wrong, naming the input/output
        ├── MalformedTransaction     bytes that are not one canonical transaction, no inputs, ...
        ├── InputUnavailable         an input spends an unknown or already spent output
        ├── ScriptFailed             an unlocking script does not unlock the output it spends
        ├── ValueOutOfRange          outputs exceed inputs, zero or over-large amounts
        └── FeeTooLow                the fee is under the policy rate for the transaction's size
└── Unavailable                      UNAVAILABLE: try again later
    └── NotMinedYet                  a receipt was asked for a transaction no block holds yet

Subclassing ValidationError keeps the one status table (`asg_grpc.services.errors`) complete:
a rejected transaction is the caller's bad input, never a server fault.
"""

from __future__ import annotations

from asg_grpc.domain.errors import Unavailable, ValidationError


class TransactionRejected(ValidationError):
    """The ledger did not accept the transaction; nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__("transaction", f"rejected: {reason}")
        self.reason = reason


class MalformedTransaction(TransactionRejected):
    pass


class InputUnavailable(TransactionRejected):
    pass


class ScriptFailed(TransactionRejected):
    pass


class ValueOutOfRange(TransactionRejected):
    pass


class FeeTooLow(TransactionRejected):
    pass


class NotMinedYet(Unavailable):
    def __init__(self, txid: str) -> None:
        super().__init__(f"transaction {txid} is not in a block yet; its receipt follows the next block")
        self.txid = txid
