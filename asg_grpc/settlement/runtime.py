"""Settlement as the core runs it: the wallet, the chain (local ledger and its miner, or ARC),
and the settler, started and stopped together by the core that dispatches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.miner import Miner
from asg_grpc.ledger.settings import LedgerSettings
from asg_grpc.ledger.wallet import load_wallet
from asg_grpc.settings import Settings
from asg_grpc.settlement.broadcast import LocalBroadcaster
from asg_grpc.settlement.settler import Settler, SettlerSettings
from asg_grpc.store import Store
from asg_grpc.store.settlement_records import WalletUtxo, WorkerPaid


class Settlement:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        on_paid: Callable[[list[WorkerPaid]], None] | None = None,
        ledger_settings: LedgerSettings | None = None,
    ) -> None:
        # The core's --data-dir applies to the wallet file too.
        chain = replace(ledger_settings or LedgerSettings.from_env(), data_dir=settings.data_dir)
        self.chain = chain
        self.store = store
        self.wallet = load_wallet(chain.wallet_wif, chain.wallet_path)
        if chain.network != "local":
            raise NotImplementedError("ARC networks are wired in by asg_grpc.settlement.arc")
        self.ledger: Ledger | None = Ledger.from_settings(store, self.wallet, chain)
        self.miner: Miner | None = Miner(self.ledger, chain.block_interval)
        self.settler = Settler(
            store,
            self.wallet,
            LocalBroadcaster(self.ledger),
            SettlerSettings(
                batch_size=settings.settle_batch, window=settings.settle_window, fee_per_kb=chain.fee_per_kb
            ),
            settings.tiers,
            on_paid=on_paid,
        )

    async def start(self) -> None:
        if self.ledger is not None:
            self._fund_from_genesis(self.ledger)
        if self.miner is not None:
            await self.miner.start()
        await self.settler.start()

    async def stop(self) -> None:
        await self.settler.stop()
        if self.miner is not None:
            await self.miner.stop()

    def _fund_from_genesis(self, ledger: Ledger) -> None:
        """A fresh local ledger pays its genesis output to the wallet; the wallet's UTXO set
        starts with it (once: a known output is left as it is)."""
        txid = ledger.ensure_genesis(self.chain.genesis_sats, time.time())
        outputs = self.store.ledger_outputs([(txid, 0)])
        genesis = outputs.get((txid, 0))
        # A ledger funded for another key (ASG_WALLET_WIF changed) pays this wallet nothing.
        if genesis is not None and genesis.locking_script == self.wallet.locking_script.serialize():
            self.store.add_wallet_utxos([WalletUtxo(txid, 0, genesis.satoshis)])
