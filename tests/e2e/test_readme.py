"""The README's Python example runs as written against a stack like `make run`'s (simulated
workers, local ledger), with only its placeholders filled in: the API key and the address."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.slow


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("readme"), ASG_BLOCK_INTERVAL="0.5") as stack:
        stack.start_workers(3)
        yield stack


@pytest.mark.parametrize("run", range(3))
def test_the_python_example_prints_the_decision_and_a_verified_receipt(dev_stack: Stack, run: int) -> None:
    (example,) = python_blocks(README.read_text())
    api_key = register(dev_stack.base_url)["api_key"]
    code = example.replace("sk_sandbox_...", api_key).replace("http://localhost:8081", dev_stack.base_url)
    printed = io.StringIO()

    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {})

    decision, receipt = printed.getvalue().splitlines()
    label, confidence, txid = decision.split()
    assert label in ("cat", "dog")
    assert 0.5 < float(confidence) <= 1.0
    assert receipt.split()[0] == txid and len(txid) == 64
