"""`asg dev` on Aerospike (`make run STORE=aerospike`, or `ASG_STORE=aerospike://… asg dev`):
a local node from the bundle when none answers, and a second core on the same namespace.

Two cores because that is what the shared store is for: both dispatch their partitions of the
open tasks (docs/storage.md, "Several cores on Aerospike"), the simulated workers are spread
over them, and the gateway talks to the first.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from asg_grpc.devstack import Stack, StackError, free_addr
from asg_grpc.settings import Settings

# The CE bundle shipped next to the repository (issue 12); ASG_AEROSPIKE_BUNDLE overrides it.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2].parent / "shared" / "aerospike"
SECOND_CORE = "core-2"


@dataclass
class LocalNode:
    """A node `asg dev` started (file mode, under the data dir: data survives a restart)."""

    bundle: Path
    workdir: Path

    def stop(self) -> None:
        subprocess.run([str(self.bundle / "stop-aerospike.sh"), str(self.workdir)], capture_output=True)


def aerospike_url(settings: Settings) -> tuple[tuple[str, int], ...]:
    """The store's Aerospike seed hosts; () when the store is SQLite."""
    return settings.aerospike_seeds


def _answers(seeds: tuple[tuple[str, int], ...]) -> bool:
    """Whether a seed accepts a connection (the core's own client checks the rest)."""
    for host, port in seeds:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
        except OSError:
            continue
        return True
    return False


def ensure_node(
    seeds: tuple[tuple[str, int], ...], settings: Settings, bundle_setting: str | None
) -> LocalNode | None:
    """None when a node answers at the seeds already; else one started from the bundle (only
    for a loopback URL: a remote cluster is never started here)."""
    if _answers(seeds):
        return None
    bundle = Path(bundle_setting) if bundle_setting else DEFAULT_BUNDLE
    loopback = all(host in ("127.0.0.1", "localhost") for host, _ in seeds)
    if not loopback or not (bundle / "run-aerospike.sh").is_file():
        where = "set ASG_AEROSPIKE_BUNDLE to the bundle's directory" if loopback else "start it"
        raise StackError(f"no Aerospike node answers at {settings.store_url} ({where})")
    workdir = settings.data_dir.resolve() / "aerospike"
    workdir.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [str(bundle / "run-aerospike.sh"), str(workdir), "file"], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise StackError(f"the Aerospike bundle did not start: {(run.stderr or run.stdout)[-800:]}")
    return LocalNode(bundle, workdir)


def start_second_core(stack: Stack) -> str:
    """The second core on the same store (its own gRPC and metrics ports); its address."""
    addr = free_addr()
    stack.spawn(SECOND_CORE, ["asg-server"], env={"ASG_GRPC_ADDR": addr, "ASG_METRICS_ADDR": free_addr()})
    return addr
