"""Dependencies point inward (DESIGN.md, docs/architecture.md): each package of the tree imports
only the packages its row allows, `domain` imports nothing outer at all, and the processes that
are not the core (gateway, worker, SDK) never reach into its internals. Checked from the source,
without importing; a package missing from the table fails too, so a new one must say where it
stands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("asg_grpc", "rest_gateway", "worker_agent", "asg_gateway", "asg_common", "asg_challenge")

# What each package may import of the product (beyond itself). Third-party rules for `domain`
# are below; the generated stubs (`asg_grpc.v1`) import nothing of ours.
ALLOWED: dict[str, set[str]] = {
    "asg_grpc.domain": {"asg_common.hosts"},  # stdlib only: the one loopback rule, shared with the worker
    "asg_grpc.settings": {"asg_grpc.domain", "asg_common", "asg_grpc.store"},  # ASG_STORE: store.open
    "asg_grpc.secret_file": set(),
    "asg_grpc.background": set(),  # how a background loop is stopped
    "asg_grpc.metrics": {"asg_grpc.domain", "asg_grpc.store"},  # counters; the store read at scrape time
    "asg_grpc.sealing": {"asg_grpc.domain", "asg_grpc.secret_file", "asg_grpc.settings"},
    "asg_grpc.store": {"asg_grpc.domain", "asg_grpc.secret_file"},  # files created 0600
    "asg_grpc.dispatch": {"asg_grpc.domain", "asg_grpc.store", "asg_grpc.background", "asg_grpc.metrics"},
    # proto <-> domain, event and export renderers, the URL guard (docs/wire.md)
    "asg_grpc.wire": {"asg_grpc.domain", "asg_grpc.store", "asg_grpc.ledger", "asg_grpc.v1", "asg_common"},
    "asg_grpc.ledger": {
        "asg_grpc.domain", "asg_grpc.store", "asg_grpc.secret_file", "asg_grpc.settings",
        "asg_grpc.background",
        "asg_gateway._scripts",  # the one script rule, shared with the SDK's receipt check; no more of it
    },
    "asg_grpc.settlement": {
        "asg_grpc.domain", "asg_grpc.store", "asg_grpc.ledger", "asg_grpc.settings", "asg_grpc.background",
        "asg_grpc.metrics",
    },
    "asg_grpc.webhooks": {
        "asg_grpc.domain", "asg_grpc.store", "asg_grpc.settings", "asg_grpc.wire", "asg_grpc.sealing",
        "asg_common", "asg_grpc.background", "asg_grpc.metrics",
    },
    "asg_grpc.jobs": {
        "asg_grpc.domain", "asg_grpc.store", "asg_grpc.sealing", "asg_grpc.settings", "asg_grpc.wire",
        "asg_grpc.background",
    },
    "asg_grpc.services": {
        "asg_grpc.domain", "asg_grpc.store", "asg_grpc.dispatch", "asg_grpc.jobs", "asg_grpc.ledger",
        "asg_grpc.sealing", "asg_grpc.settings", "asg_grpc.webhooks", "asg_grpc.wire", "asg_grpc.v1",
        "asg_grpc.metrics", "asg_common",  # asg_common.logs: the request id on the core's log lines
    },
    "asg_grpc.operator": {"asg_grpc.secret_file", "asg_grpc.settings", "asg_grpc.v1"},
    "asg_grpc.devstack": {"asg_grpc.domain", "asg_grpc.operator", "asg_grpc.settings"},
    "asg_grpc.cli": {
        "asg_grpc.devstack", "asg_grpc.operator", "asg_grpc.settings", "asg_gateway",
        "asg_grpc.v1",  # the operator's worker commands call LabelingService
    },
    "asg_grpc.server": {"asg_grpc", "asg_common"},  # composition: everything
    "asg_grpc": set(),  # the package's own __init__
    "asg_grpc.v1": set(),
    "asg_common": {"asg_grpc.v1"},
    "rest_gateway": {"asg_grpc.v1", "asg_common"},
    "worker_agent": {"asg_grpc.v1", "asg_common"},
    "asg_gateway": set(),  # the SDK speaks HTTP only
    # A process of its own (docs/challenge.md); as a marketplace worker it runs the worker
    # agent's client (stream, acks, reconnects) rather than a second copy of it.
    "asg_challenge": {"asg_grpc.v1", "asg_common", "worker_agent"},
}
DOMAIN_FORBIDDEN = (
    "grpc", "google.protobuf", "fastapi", "starlette", "sqlite3", "httpx", "aiohttp", "aerospike",
)  # fmt: skip


def package_of(module: str) -> str:
    """The row of ALLOWED a module belongs to: `asg_grpc.<sub>` inside the core, else the top."""
    parts = [part for part in module.split(".") if part != "__init__"]
    return ".".join(parts[:2]) if parts[0] == "asg_grpc" and len(parts) > 1 else parts[0]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from asg_grpc import metrics` imports asg_grpc.metrics, not the package.
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources() -> list[Path]:
    return sorted(
        path
        for top in PRODUCT
        for path in (ROOT / top).rglob("*.py")
        if "v1" not in path.relative_to(ROOT).parts[1:2]
    )


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def allows(row: str, target: str) -> bool:
    return any(target == ok or target.startswith(ok + ".") for ok in ALLOWED[row] | {row})


def test_every_package_has_a_row() -> None:
    rows = {package_of(module_of(path)) for path in sources()}

    assert rows <= ALLOWED.keys(), f"add a row for {sorted(rows - ALLOWED.keys())}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_inward(path: Path) -> None:
    row = package_of(module_of(path))
    ours = {name for name in imports(path) if name.split(".")[0] in PRODUCT}
    bad = {name for name in ours if not allows(row, name)}

    assert not bad, f"{row} may not import {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((ROOT / "asg_grpc" / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_does_no_io(path: Path) -> None:
    bad = {n for n in imports(path) for f in DOMAIN_FORBIDDEN if n == f or n.startswith(f + ".")}

    assert not bad, f"{path.name} imports {sorted(bad)}"
