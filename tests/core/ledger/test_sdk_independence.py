"""The SDK verifies receipts on a worker's machine, where the core is not installed: nothing in
`asg_gateway` may import `asg_grpc`. Checked from the source, without importing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asg_gateway

SDK = Path(asg_gateway.__file__).parent


@pytest.mark.parametrize("path", sorted(SDK.glob("*.py")), ids=lambda p: p.name)
def test_sdk_module_imports_nothing_from_the_core(path: Path) -> None:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)

    assert not {n for n in names if n == "asg_grpc" or n.startswith("asg_grpc.")}
