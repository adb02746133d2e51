"""The ledger's configuration, read from `ASG_*` variables with working defaults.

Kept in this package (not `asg_grpc.settings`) so the ledger can be wired in without touching
the core's settings object; the server may fold these fields in later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from asg_grpc.settings import SettingsError

# Validated here so one reader serves every network; only "local" runs this package's ledger
# (testnet/mainnet broadcast to ARC, another piece of the settlement work).
NETWORKS = ("local", "testnet", "mainnet")
MAX_MONEY = 21_000_000 * 100_000_000  # satoshis; no amount or sum of amounts may exceed it
DEFAULT_GENESIS_SATS = 1_000_000 * 100_000_000  # 1M BSV: ample for local runs, well below MAX_MONEY


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, *, integer: bool) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class LedgerSettings:
    data_dir: Path = Path("var")
    network: str = "local"
    # WIF of the platform key; unset: generated once into <data dir>/wallet.wif (mode 0600).
    wallet_wif: str | None = None
    # Seconds between blocks of the local ledger.
    block_interval: float = 5.0
    # Minimum relay fee in satoshis per 1000 bytes of serialized transaction, rounded up.
    fee_per_kb: int = 100
    # Paid to the platform wallet once, by the genesis transaction of a fresh ledger.
    genesis_sats: int = DEFAULT_GENESIS_SATS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LedgerSettings:
        env = os.environ if env is None else env
        network = env.get("ASG_BSV_NETWORK", "") or cls.network
        if network not in NETWORKS:
            raise SettingsError(f"ASG_BSV_NETWORK must be one of {', '.join(NETWORKS)}, got {network!r}")
        genesis = int(_number(env, "ASG_GENESIS_SATS", cls.genesis_sats, 1, integer=True))
        if genesis > MAX_MONEY:
            raise SettingsError(f"ASG_GENESIS_SATS must be at most {MAX_MONEY}, got {genesis}")
        return cls(
            data_dir=Path(env.get("ASG_DATA_DIR", "") or cls.data_dir),
            network=network,
            wallet_wif=env.get("ASG_WALLET_WIF") or None,
            block_interval=_number(env, "ASG_BLOCK_INTERVAL", cls.block_interval, 0.01, integer=False),
            fee_per_kb=int(_number(env, "ASG_FEE_PER_KB", cls.fee_per_kb, 0, integer=True)),
            genesis_sats=genesis,
        )

    @property
    def wallet_path(self) -> Path:
        return self.data_dir / "wallet.wif"
