"""The faults, one a round: each breaks something for a few seconds and puts it back (a killed
process is started again, as a supervisor would), while the customers go on submitting."""

from __future__ import annotations

import resource
import signal
import time
from collections.abc import Callable
from random import Random

from tests.chaos.rig import LEASE_SECONDS, WORKERS, Rig

DISK_LIMIT = 1  # byte: no write of the core gets past it while the disk is "full"


def kill_core(rig: Rig, rng: Random) -> None:
    rig.stack.kill("core")
    time.sleep(rng.uniform(0.2, 1.0))
    rig.restart("core")
    rig.stack.wait_ready()


def stop_core(rig: Rig, rng: Random) -> None:
    """SIGSTOP past every lease, then SIGCONT: the core wakes to lapsed leases and idle streams."""
    pause(rig, "core", LEASE_SECONDS + rng.uniform(0.5, 2.0))


def kill_gateway(rig: Rig, rng: Random) -> None:
    rig.stack.kill("gateway")
    time.sleep(rng.uniform(0.2, 1.0))
    rig.restart("gateway")
    rig.stack.wait_ready()


def stop_gateway(rig: Rig, rng: Random) -> None:
    pause(rig, "gateway", rng.uniform(1.5, 3.0))


def kill_workers(rig: Rig, rng: Random) -> None:
    names = [f"worker-{i}" for i in rng.sample(range(WORKERS), 2)]
    for name in names:
        rig.stack.kill(name)
    time.sleep(rng.uniform(0.5, 1.5))
    for name in names:
        rig.restart(name)


def stop_workers(rig: Rig, rng: Random) -> None:
    """Two agents frozen past their leases: their slots must go to the others."""
    procs = [rig.stack.procs[f"worker-{i}"] for i in rng.sample(range(WORKERS), 2)]
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)
    time.sleep(LEASE_SECONDS + rng.uniform(1.0, 2.0))
    for proc in procs:
        proc.send_signal(signal.SIGCONT)


def cut_streams(rig: Rig, rng: Random) -> None:
    for _ in range(3):
        rig.proxy.cut()
        time.sleep(rng.uniform(0.3, 0.9))


def stall_streams(rig: Rig, rng: Random) -> None:
    """Every connection to the core held open but silent, past the gateway's deadline."""
    rig.proxy.freeze()
    time.sleep(rng.uniform(2.5, 4.0))
    rig.proxy.thaw()


def fill_disk(rig: Rig, rng: Random) -> None:
    """RLIMIT_FSIZE on the running core: no file it writes may grow (the store's WAL and
    database, its log), as on a full disk; then the limit is lifted."""
    pid = rig.stack.procs["core"].pid
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (DISK_LIMIT, resource.RLIM_INFINITY))
    try:
        time.sleep(rng.uniform(2.0, 3.5))
    finally:
        if rig.stack.procs["core"].poll() is None:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)


def fail_webhooks(rig: Rig, rng: Random) -> None:
    hooks(rig, "fail", rng.uniform(2.0, 4.0))


def hang_webhooks(rig: Rig, rng: Random) -> None:
    hooks(rig, "hang", rng.uniform(2.0, 4.0))


def pause(rig: Rig, name: str, seconds: float) -> None:
    proc = rig.stack.procs[name]
    proc.send_signal(signal.SIGSTOP)
    time.sleep(seconds)
    proc.send_signal(signal.SIGCONT)


def hooks(rig: Rig, mode: str, seconds: float) -> None:
    rig.hook_mode = mode
    time.sleep(seconds)
    rig.hook_mode = "ok"


FAULTS: dict[str, Callable[[Rig, Random], None]] = {
    "core SIGKILL": kill_core,
    "core SIGSTOP": stop_core,
    "gateway SIGKILL": kill_gateway,
    "gateway SIGSTOP": stop_gateway,
    "workers SIGKILL": kill_workers,
    "workers SIGSTOP": stop_workers,
    "streams cut": cut_streams,
    "streams stall": stall_streams,
    "disk full": fill_disk,
    "webhooks 500": fail_webhooks,
    "webhooks hang": hang_webhooks,
}
