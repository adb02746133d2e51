"""A real Aerospike node for the store tests, started once per session.

The node named by ASG_TEST_AEROSPIKE (an aerospike:// URL) when set; else one already
answering on 127.0.0.1:3000 (another session's, reused); else the shared CE bundle in
../shared/aerospike, started here (its runtime packages apt-installed when root) and stopped at
the end. Without any of them the Aerospike tests skip, saying why. Each run uses set names of
its own prefix, so runs sharing a node never see each other's records.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from asg_grpc.domain.errors import Unavailable
from asg_grpc.store.aerospike.connection import AerospikeUrl, connect, parse_url

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO.parent / "shared" / "aerospike"
LOCAL = AerospikeUrl((("127.0.0.1", 3000),), "asg")
PORTS = (3000, 3001, 3002, 3003)
_APT = re.compile(r"apt-get install (?:-y)?((?: [a-z0-9.+-]+)+)")


def _answers(url: AerospikeUrl) -> bool:
    try:
        connect(url).close()
    except Unavailable:
        return False
    return True


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(workdir: Path) -> bool:
    """run-aerospike.sh; once more after apt-installing the packages it names, when root.
    False when another session's node came up meanwhile (then that one is used)."""
    for _ in range(2):
        run = subprocess.run(
            [str(BUNDLE / "run-aerospike.sh"), str(workdir), "memory"], capture_output=True, text=True
        )
        if run.returncode == 0:
            return True
        wanted = _APT.search(run.stderr + run.stdout)
        if wanted is None or os.geteuid() != 0:
            break
        packages = wanted.group(1).split()
        subprocess.run(["apt-get", "install", "-y", *packages], check=True, capture_output=True)
    if _answers(LOCAL):
        return False
    pytest.fail(f"the Aerospike bundle did not start:\n{run.stderr[-2000:]}")


@pytest.fixture(scope="session")
def aerospike_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AerospikeUrl]:
    started: Path | None = None
    if os.environ.get("ASG_TEST_AEROSPIKE"):
        url = parse_url(os.environ["ASG_TEST_AEROSPIKE"])
        if not _answers(url):
            pytest.fail(f"ASG_TEST_AEROSPIKE={os.environ['ASG_TEST_AEROSPIKE']} does not answer")
    elif _answers(LOCAL):
        url = LOCAL
    elif not BUNDLE.is_dir():
        pytest.skip(f"no Aerospike node: ASG_TEST_AEROSPIKE is unset and {BUNDLE} is absent")
    elif taken := [p for p in PORTS if _port_taken(p)]:
        pytest.skip(f"no Aerospike node on 127.0.0.1:3000, and ports {taken} are taken by something else")
    else:
        workdir = tmp_path_factory.mktemp("aerospike")
        started = workdir if _start(workdir) else None
        url = LOCAL
    yield replace(url, set_prefix=f"{url.set_prefix}t{uuid.uuid4().hex[:10]}_")
    if started is not None:
        subprocess.run([str(BUNDLE / "stop-aerospike.sh"), str(started)], capture_output=True, check=False)
