"""A real Aerospike node for the store tests, started once per session.

The node named by ASG_TEST_AEROSPIKE (an aerospike:// URL) when set; else one already
answering on 127.0.0.1:3000 (another session's, reused); else the shared CE bundle in
../shared/aerospike, started here (its runtime packages apt-installed when root) and stopped at
the end. Without any of them the Aerospike tests skip, saying why.

Set names are never freed by a running node (a namespace holds at most 4,096, truncated or
not), so runs do not invent new ones: a session claims one of `SLOTS` fixed prefixes
(`t<n>_`, a CREATE_ONLY record in the `testslots` set, with a TTL in case the session dies),
and each test that wants an empty store (`fresh_aerospike_url`) truncates that prefix's sets
first and again at teardown. So a node serves any number of runs with at most `SLOTS` times
a store's ~20 sets, and concurrent runs (other worktrees) never share a slot.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import aerospike
import pytest
from aerospike import exception as aex

from asg_grpc.domain.errors import Unavailable
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry, connect, parse_url

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO.parent / "shared" / "aerospike"
LOCAL = AerospikeUrl((("127.0.0.1", 3000),), "asg")
PORTS = (3000, 3001, 3002, 3003)
SLOTS = 24
SLOT_SET = "testslots"
SLOT_TTL = 3 * 3600  # a dead session's slot comes free again after this
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


def _claim_slot(client: Any, namespace: str, base: str) -> str:
    """A set prefix no other live session holds (a record per slot, written CREATE_ONLY)."""
    for _ in range(60):
        for n in range(SLOTS):
            try:
                client.put(
                    (namespace, SLOT_SET, f"{base}t{n}"),
                    {"pid": os.getpid(), "at": time.time()},
                    policy={"exists": aerospike.POLICY_EXISTS_CREATE, "ttl": SLOT_TTL},
                )
            except aex.RecordExistsError:
                continue
            return f"{base}t{n}_"
        time.sleep(5)
    pytest.fail(f"all {SLOTS} Aerospike test slots stayed taken for 5 minutes (set {SLOT_SET})")


def truncate_prefix(client: Any, namespace: str, prefix: str) -> None:
    """Empties every set whose name starts with `prefix`. Truncation drops records last written
    before the truncate time, at millisecond grain: the sleeps keep writes of the same
    millisecond on the right side of it. Each call is retried as the store retries one (a
    loaded node may time out an info or truncate call; both are harmless to repeat)."""
    retry = Retry(attempts=6, first_delay=0.1)
    answer = str(retry(lambda: client.info_random_node(f"sets/{namespace}")))
    names = {
        field.partition("=")[2]
        for item in answer.partition("\t")[2].split(";")
        for field in item.split(":")
        if field.startswith("set=")
    }
    doomed = sorted(name for name in names if name.startswith(prefix))
    if not doomed:
        return
    time.sleep(0.003)
    for name in doomed:
        retry(partial(client.truncate, namespace, name, 0))
    time.sleep(0.003)


@pytest.fixture(scope="session")
def aerospike_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AerospikeUrl]:
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
    client = connect(url)
    prefix = _claim_slot(client, url.namespace, url.set_prefix)
    yield replace(url, set_prefix=prefix)
    truncate_prefix(client, url.namespace, prefix)
    client.remove((url.namespace, SLOT_SET, prefix.removesuffix("_")))
    client.close()
    if started is not None:
        subprocess.run([str(BUNDLE / "stop-aerospike.sh"), str(started)], capture_output=True, check=False)


@pytest.fixture(scope="session")
def aerospike_url(aerospike_node: AerospikeUrl) -> AerospikeUrl:
    """The session's slot prefix; its sets may hold earlier tests' records (use
    `fresh_aerospike_url` for an empty store)."""
    return aerospike_node


@pytest.fixture
def fresh_aerospike_url(aerospike_node: AerospikeUrl) -> Iterator[AerospikeUrl]:
    """The session's slot prefix with every one of its sets emptied, before and after the test."""
    client = connect(aerospike_node)
    truncate_prefix(client, aerospike_node.namespace, aerospike_node.set_prefix)
    try:
        yield aerospike_node
    finally:
        truncate_prefix(client, aerospike_node.namespace, aerospike_node.set_prefix)
        client.close()
