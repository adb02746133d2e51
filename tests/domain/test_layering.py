"""`asg_grpc/domain` is pure (DESIGN.md, STYLE.md): it imports no gRPC, web framework, database
or HTTP client, and none of the core's outer layers. Checked from the source, without importing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asg_grpc.domain

DOMAIN = Path(asg_grpc.domain.__file__).parent
FORBIDDEN = (
    "grpc", "google.protobuf", "fastapi", "starlette", "sqlite3", "httpx", "aerospike",
    "asg_grpc.v1", "asg_grpc.services", "asg_grpc.store", "asg_grpc.server", "rest_gateway",
)  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_nothing_outer(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        for forbidden in FORBIDDEN
        if name == forbidden or name.startswith(forbidden + ".")
    }

    assert not bad, f"{path.name} imports {sorted(bad)}"
