"""The block clock of the local ledger: `Ledger.mine` every `block_interval` seconds.

Runs on the core's event loop like the webhook worker; one per store (the core that dispatches).
A second miner on the same store would be harmless, only wasteful: a block that does not extend
the tip is refused whole by the store.
"""

from __future__ import annotations

import asyncio
import logging
import time

from asg_grpc.background import stop_tasks
from asg_grpc.ledger.ledger import Ledger

log = logging.getLogger("asg.ledger")


class Miner:
    """`start()` once, `stop()` once; `stop()` mines what is pending one last time."""

    def __init__(self, ledger: Ledger, interval: float) -> None:
        self._ledger = ledger
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ledger-miner")

    async def stop(self) -> None:
        await stop_tasks(self._task)
        self._task = None
        self.mine_once()

    def mine_once(self) -> None:
        try:
            mined = self._ledger.mine(time.time())
        except Exception:  # a store hiccup must not stop the clock; the next tick retries
            log.exception("mining a block failed")
            return
        if mined is not None:
            log.info(
                "block mined",
                extra={"height": mined.block.height, "hash": mined.block.block_hash, "txs": len(mined.txids)},
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.mine_once()
