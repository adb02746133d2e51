"""The platform wallet's key file and the one-time genesis funding, across restarts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from bsv import PrivateKey

from asg_grpc.domain.settlement import MAX_MONEY
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.wallet import load_wallet
from asg_grpc.settings import DEFAULT_GENESIS_SATS, LedgerSettings, Settings, SettingsError
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.ledger.conftest import NOW


def test_wallet_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "wallet.wif"
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        first = load_wallet(None, path)
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.address.startswith("1")
    again = load_wallet(None, path)
    assert again.address == first.address
    assert [p.name for p in path.parent.iterdir()] == ["wallet.wif"]  # no temporary file left


def test_wallet_wif_from_the_environment_wins(tmp_path: Path) -> None:
    key = PrivateKey()
    wallet = load_wallet(key.wif(), tmp_path / "wallet.wif")

    assert wallet.address == key.address()
    assert not (tmp_path / "wallet.wif").exists()


def test_an_empty_wallet_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    (tmp_path / "wallet.wif").write_text("")

    with pytest.raises(OSError, match="is empty"):
        load_wallet(None, tmp_path / "wallet.wif")


def test_genesis_funds_the_wallet_once_across_restarts(tmp_path: Path) -> None:
    db, keyfile = tmp_path / "asg.sqlite3", tmp_path / "wallet.wif"
    store = SQLiteStore(db)
    ledger = Ledger(store, load_wallet(None, keyfile))
    genesis = ledger.ensure_genesis(5_000, NOW)
    assert [(u.txid, u.satoshis) for u in ledger.spendable()] == [(genesis, 5_000)]
    assert ledger.mine(NOW) is not None
    store.close()

    store = SQLiteStore(db)
    ledger = Ledger(store, load_wallet(None, keyfile))
    assert ledger.ensure_genesis(5_000, NOW + 60) == genesis
    assert ledger.ensure_genesis(9_999, NOW + 60) == genesis  # another amount: still not again
    assert [(u.txid, u.satoshis) for u in ledger.spendable()] == [(genesis, 5_000)]
    assert ledger.mine(NOW + 60) is None
    record = store.ledger_transaction(genesis)
    assert record is not None and record.kind == "genesis" and record.block_height == 0
    store.close()


def test_settings_defaults_and_overrides() -> None:
    assert Settings.from_env({}).ledger == LedgerSettings()
    assert LedgerSettings().genesis_sats == DEFAULT_GENESIS_SATS <= MAX_MONEY
    custom = Settings.from_env(
        {
            "ASG_DATA_DIR": "/d",
            "ASG_BSV_NETWORK": "local",
            "ASG_WALLET_WIF": "Kx",
            "ASG_BLOCK_INTERVAL": "0.5",
            "ASG_FEE_PER_KB": "50",
            "ASG_GENESIS_SATS": "123",
        }
    )
    assert custom.ledger == LedgerSettings("local", "Kx", 0.5, 50, 123)
    assert custom.wallet_path == Path("/d/wallet.wif")
    assert custom.with_overrides(data_dir=Path("/e")).wallet_path == Path("/e/wallet.wif")  # --data-dir


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASG_BSV_NETWORK", "regtest"),
        ("ASG_BLOCK_INTERVAL", "0"),
        ("ASG_FEE_PER_KB", "-1"),
        ("ASG_GENESIS_SATS", str(MAX_MONEY + 1)),
        ("ASG_GENESIS_SATS", "lots"),
    ],
)
def test_settings_refuse_unusable_values(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_an_uncompressed_key_wif_is_refused(tmp_path: Path) -> None:
    """Payout fees are sized for compressed-key inputs: a legacy WIF would underpay each one."""
    key = PrivateKey()
    key.compressed = False
    with pytest.raises(SettingsError, match="ASG_WALLET_WIF is an uncompressed-key WIF"):
        load_wallet(key.wif(), tmp_path / "wallet.wif")


def test_a_public_chain_makes_the_store_durable_against_power_loss() -> None:
    """A payout is recorded before it is broadcast; on a public chain that record must survive
    a power cut, so SQLite commits with FULL there (docs/settlement.md)."""
    arc = {"ASG_ARC_URL": "https://arc.example.com"}
    assert Settings.from_env({"ASG_BSV_NETWORK": "testnet", **arc}).sqlite_synchronous == "FULL"
    assert Settings.from_env({}).sqlite_synchronous == "NORMAL"
    with pytest.raises(SettingsError, match="ASG_SQLITE_SYNCHRONOUS must be FULL or EXTRA"):
        Settings.from_env({"ASG_BSV_NETWORK": "mainnet", "ASG_SQLITE_SYNCHRONOUS": "NORMAL", **arc})
