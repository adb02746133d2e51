"""One dispatcher per store: a lease row naming the core process that dispatches.

Dispatch keeps open tasks in memory, so two processes dispatching for one store would hand
the same slots out twice. The lease is taken at start, renewed every few seconds, and taken
over only from an owner that is gone: a dead process on this host, or one whose heartbeat is
older than STALE_AFTER.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from asg_grpc.store.areas import Dispatch

log = logging.getLogger("asg.dispatch")

HEARTBEAT = 2.0
STALE_AFTER = 10.0


class DispatchTaken(RuntimeError):
    """Another live core process dispatches for this store."""


# When this process started (close enough): a lease of our own pid renewed before this cannot
# be ours; it is a previous incarnation that crashed and got the same pid (PID 1 in a container).
_STARTED = time.time()


def alive_here(owner: str, heartbeat_at: float) -> bool | None:
    """Whether the owner's process is alive, or None when it runs on another host."""
    host, pid, _ = owner.split(":")
    if host != socket.gethostname():
        return None
    if int(pid) == os.getpid():
        return heartbeat_at >= _STARTED
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DispatchLease:
    def __init__(self, store: Dispatch) -> None:
        self._store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def acquire(self) -> None:
        now = time.time()
        current = self._store.dispatch_lease()
        if current is not None:
            owner, heartbeat_at = current
            if alive_here(owner, heartbeat_at) is not False and now - heartbeat_at < STALE_AFTER:
                raise DispatchTaken(
                    f"core {owner} already dispatches for this store; start this one with ASG_DISPATCH=off"
                )
        if not self._store.take_dispatch_lease(self.owner, now, current):
            raise DispatchTaken("another core took the dispatch lease at the same moment")

    async def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew until cancelled; call `on_lost` if the lease was taken away."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                renewed = self._store.renew_dispatch_lease(self.owner, time.time())
            except Exception:
                log.exception("renewing the dispatch lease failed; retrying")
                continue
            if not renewed:
                log.critical("the dispatch lease was taken over; this core stops")
                on_lost()
                return

    def release(self) -> None:
        self._store.release_dispatch_lease(self.owner)
