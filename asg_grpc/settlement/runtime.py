"""Settlement as the core runs it: the wallet, the chain (local ledger and its miner, or ARC),
and the settler, started and stopped together by the core that dispatches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from bsv.constants import Network

from asg_grpc.domain.settlement import WorkerPayment
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.miner import Miner
from asg_grpc.ledger.wallet import load_wallet
from asg_grpc.settings import ArcSettings, Settings
from asg_grpc.settlement.arc import ArcBroadcaster, SourceOutput
from asg_grpc.settlement.broadcast import Broadcaster, LocalBroadcaster
from asg_grpc.settlement.settler import Settler, SettlerSettings
from asg_grpc.settlement.utxos import UtxoSourceError, fetch_unspent
from asg_grpc.store.areas import Ledger as LedgerArea
from asg_grpc.store.areas import Settlement as SettlementArea
from asg_grpc.store.settlement_records import WalletUtxo

log = logging.getLogger("asg.settlement")


class PaymentStore(SettlementArea, LedgerArea, Protocol):
    """The settlement outbox and wallet, and the local ledger the wallet is funded on."""


class Settlement:
    def __init__(
        self,
        store: PaymentStore,
        settings: Settings,
        *,
        on_paid: Callable[[list[WorkerPayment]], None] | None = None,
    ) -> None:
        chain = settings.ledger
        self.chain = chain
        self.store = store
        # In the core's data dir (--data-dir applies to it too) unless ASG_WALLET_WIF is set.
        self.wallet = load_wallet(chain.wallet_wif, settings.wallet_path)
        self.ledger: Ledger | None = None
        self.miner: Miner | None = None
        self.arc: ArcSettings | None = None
        broadcaster: Broadcaster
        if chain.network == "local":
            self.ledger = Ledger.from_settings(store, self.wallet, chain)
            self.miner = Miner(self.ledger, chain.block_interval)
            broadcaster = LocalBroadcaster(self.ledger)
        else:
            assert settings.arc is not None, "Settings requires ASG_ARC_URL off the local ledger"
            self.arc = settings.arc
            broadcaster = ArcBroadcaster.from_settings(self.arc, source_output=self._source_output)
        self.settler = Settler(
            store,
            self.wallet,
            broadcaster,
            SettlerSettings(
                batch_size=settings.settle_batch, window=settings.settle_window, fee_per_kb=chain.fee_per_kb
            ),
            settings.tiers,
            on_paid=on_paid,
        )

    async def start(self) -> None:
        if self.ledger is not None:
            self._fund_from_genesis(self.ledger)
        elif not self.store.wallet_balance().get("available"):
            await self._learn_utxos()
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

    async def _learn_utxos(self) -> None:
        """A wallet funded on testnet/mainnet: its outputs, learned at start while none is
        available. Outputs the store knows (spent, reserved, lost) keep their state: an explorer
        may still list an output the core has spent."""
        assert self.arc is not None
        network = "testnet" if self.chain.network == "testnet" else "mainnet"
        address = str(
            self.wallet.private_key.address(
                network=Network.TESTNET if network == "testnet" else Network.MAINNET
            )
        )
        try:
            found = await fetch_unspent(address, network, self.arc.woc_url)
        except UtxoSourceError as exc:
            log.error("the wallet's outputs could not be learned; payouts wait", extra={"error": str(exc)})
            return
        added = self.store.add_wallet_utxos([WalletUtxo(u.txid, u.vout, u.satoshis) for u in found])
        log.info("wallet outputs learned", extra={"address": address, "outputs": added})

    def _source_output(self, txid: str, vout: int) -> SourceOutput | None:
        """What a payout input spends, for ARC's Extended Format: always a wallet output."""
        sats = self.store.wallet_utxo_satoshis(txid, vout)
        return None if sats is None else SourceOutput(sats, self.wallet.locking_script.serialize())
