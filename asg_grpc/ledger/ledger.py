"""The local ledger: accepts transactions into the store's UTXO set and mines them into blocks.

`submit` is the one way in (the settler's broadcast on the local network); `mine` packs what was
accepted into the next block; `ensure_genesis` funds the platform wallet once per ledger. Store
calls are short and synchronous, like the rest of the core's.
"""

from __future__ import annotations

from dataclasses import dataclass

from bsv import ChainTracker, MerklePath, Transaction

from asg_grpc.ledger import blocks, rules
from asg_grpc.ledger.errors import InputUnavailable
from asg_grpc.ledger.wallet import Wallet
from asg_grpc.settings import LedgerSettings
from asg_grpc.store.areas import Ledger as LedgerArea
from asg_grpc.store.ledger_records import LedgerBlock, LedgerOutput, NewLedgerTx

MAX_BLOCK_TXS = 20_000  # per block (a few hundred ms of hashing); the rest waits for the next one


@dataclass(frozen=True, slots=True)
class MinedBlock:
    block: LedgerBlock
    txids: list[str]  # in block order, the coinbase first
    paths: dict[str, bytes]  # BUMP binary by txid, the coinbase's included (MerklePath.from_binary)


class Ledger:
    def __init__(self, store: LedgerArea, wallet: Wallet, *, fee_per_kb: int = 100) -> None:
        self.store = store
        self.wallet = wallet
        self.fee_per_kb = fee_per_kb

    @classmethod
    def from_settings(cls, store: LedgerArea, wallet: Wallet, settings: LedgerSettings) -> Ledger:
        return cls(store, wallet, fee_per_kb=settings.fee_per_kb)

    # money in ------------------------------------------------------------------------------

    def ensure_genesis(self, satoshis: int, now: float) -> str:
        """Fund the platform wallet with `satoshis` unless this ledger was funded already (by
        any key: a changed ASG_WALLET_WIF is not funded again). Returns the genesis txid; its
        output is spendable at once and is mined with the next block."""
        tx = blocks.genesis(self.wallet.locking_script, satoshis)
        record = NewLedgerTx(
            tx.txid(), tx.serialize(), 0, "genesis", [], [(satoshis, self.wallet.locking_script.serialize())]
        )
        return self.store.ledger_record_genesis(record, now)

    def submit(self, tx: bytes | Transaction, now: float) -> str:
        """Validate and apply `tx` atomically; its txid. Submitting an accepted transaction
        again returns its txid (not a double spend). Raises a TransactionRejected subclass."""
        raw = tx.serialize() if isinstance(tx, Transaction) else bytes(tx)
        parsed = rules.parse(raw)
        txid = parsed.txid()
        if self.store.ledger_transaction(txid) is not None:
            return txid
        outpoints = rules.check_shape(parsed)
        held = self.store.ledger_outputs(outpoints)
        if held and all(h.spent_by == txid for h in held.values()) and len(held) == len(outpoints):
            return txid  # accepted by another writer between the two reads above
        spent = {o: rules.Spendable(h.satoshis, h.locking_script, h.spent_by) for o, h in held.items()}
        fee = rules.check_spend(parsed, len(raw), outpoints, spent, self.fee_per_kb)
        record = NewLedgerTx(
            txid,
            raw,
            fee,
            "tx",
            outpoints,
            [(o.satoshis, o.locking_script.serialize()) for o in parsed.outputs],
        )
        # Checked again under the write lock: another writer may have spent an input meanwhile.
        conflicts = self.store.ledger_accept(record, now)
        if conflicts:
            if self.store.ledger_transaction(txid) is not None:
                return txid  # another writer accepted this very transaction meanwhile
            first = conflicts[0]
            if isinstance(first, LedgerOutput):
                index = outpoints.index((first.txid, first.vout))
                raise InputUnavailable(
                    f"input {index} spends {first.txid}:{first.vout}, already spent by {first.spent_by}"
                )
            index = outpoints.index(first)
            raise InputUnavailable(f"input {index} spends an unknown output {first[0]}:{first[1]}")
        return txid

    # blocks ----------------------------------------------------------------------------------

    def mine(self, now: float, *, max_txs: int = MAX_BLOCK_TXS) -> MinedBlock | None:
        """The next block with the accepted, unmined transactions (oldest first); None when
        there are none (no empty blocks) or another process extended the chain meanwhile."""
        pending = self.store.ledger_unmined(max_txs)
        if not pending:
            return None
        tip = self.store.ledger_tip()
        height = 0 if tip is None else tip.height + 1
        coinbase = blocks.coinbase(height)
        txids = [coinbase.txid(), *pending]
        levels = blocks.merkle_levels(txids)
        header = blocks.Header(
            version=blocks.HEADER_VERSION,
            prev_hash=blocks.NULL_HASH if tip is None else tip.block_hash,
            merkle_root=blocks.merkle_root(levels),
            time=max(int(now), 0 if tip is None else tip.time),
            bits=blocks.BITS,
            nonce=0,
        )
        paths = {txid: blocks.merkle_path_bytes(levels, index, height) for index, txid in enumerate(txids)}
        block = LedgerBlock(
            height, header.hash, header.serialize(), header.merkle_root, header.time, len(txids)
        )
        coinbase_record = NewLedgerTx(
            txids[0],
            coinbase.serialize(),
            0,
            "coinbase",
            [],
            [(o.satoshis, o.locking_script.serialize()) for o in coinbase.outputs],
        )
        added = self.store.ledger_add_block(block, coinbase_record, list(paths.items()))
        return MinedBlock(block, txids, paths) if added else None

    # reads -----------------------------------------------------------------------------------

    def spendable(self, limit: int = 1000) -> list[LedgerOutput]:
        """The platform wallet's unspent outputs, largest first, mined or not."""
        return self.store.ledger_unspent(self.wallet.locking_script.serialize(), limit)

    def transaction(self, txid: str) -> Transaction | None:
        """The transaction as bsv-sdk parses it, with its merkle path once mined."""
        record = self.store.ledger_transaction(txid)
        if record is None:
            return None
        tx = Transaction.from_hex(record.raw)
        assert tx is not None  # the store holds only transactions that parsed
        if record.merkle_path is not None:
            tx.merkle_path = MerklePath.from_binary(record.merkle_path)
        return tx

    def chain_tracker(self) -> LedgerChainTracker:
        return LedgerChainTracker(self.store)


class LedgerChainTracker(ChainTracker):
    """bsv-sdk's ChainTracker over the local headers, so `Transaction.verify` and
    `MerklePath.verify` run offline against this ledger."""

    def __init__(self, store: LedgerArea) -> None:
        self._store = store

    async def is_valid_root_for_height(self, root: str, height: int) -> bool:
        block = self._store.ledger_block(height)
        return block is not None and block.merkle_root == root

    async def current_height(self) -> int:
        tip = self._store.ledger_tip()
        return 0 if tip is None else tip.height
