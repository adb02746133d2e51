"""The platform wallet: the one key that holds the platform's satoshis and signs payouts.

From ASG_WALLET_WIF when set; otherwise generated on first start into <data dir>/wallet.wif.
The file is written by `secret_file.read_or_create` (mode 0600 from its first byte, fsynced,
linked into place), so it is never world-readable nor half-written, and two processes
starting together end up with the same key.

Addresses are mainnet-style ("1…") on the local ledger: payout addresses registered by workers
are validated as mainnet or testnet P2PKH, the locking script is the same either way (it holds
only the key hash), and a mainnet WIF carries over unchanged to a mainnet deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsv import P2PKH, PrivateKey, Script
from bsv.constants import Network

from asg_grpc.secret_file import read_or_create
from asg_grpc.settings import SettingsError


@dataclass(frozen=True)
class Wallet:
    private_key: PrivateKey

    @property
    def address(self) -> str:
        return str(self.private_key.address(network=Network.MAINNET))

    @property
    def locking_script(self) -> Script:
        script: Script = P2PKH().lock(self.private_key.public_key().hash160())
        return script

    def unlocker(self) -> Any:
        """The unlocking-script template for `TransactionInput(unlocking_script_template=...)`."""
        return P2PKH().unlock(self.private_key)


def load_wallet(wif: str | None, path: Path) -> Wallet:
    """The wallet from `wif`, else from `path`, else a new key written to `path` (mode 0600)."""
    if wif:
        return _compressed(wif, "ASG_WALLET_WIF")
    wif = read_or_create(path, lambda: PrivateKey(network=Network.MAINNET).wif())
    return _compressed(wif, str(path))


def _compressed(wif: str, source: str) -> Wallet:
    """Payout fees are planned for compressed-key inputs (docs/settlement.md); a legacy
    uncompressed-key WIF ("5…") would sign every payout 32 bytes an input over its fee."""
    try:
        key = PrivateKey(wif)
    except ValueError:  # the message says nothing of the key; ours does not either
        raise SettingsError(f"{source} is not a WIF private key") from None
    if not key.compressed:
        raise SettingsError(f"{source} is an uncompressed-key WIF; use the compressed form of the key")
    return Wallet(key)
