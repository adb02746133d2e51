"""The documentation runs as written: every fenced `sh` and `python` block of README.md and
docs/*.md is run, in order, against a live stack like `make run`'s (simulated workers, local
ledger), with the documented placeholders filled in. A block that cannot run here says why on
the line before it (`<!-- not run: reason -->`); a block without a reason fails this test.

A block fails on a non-zero exit, a Python exception, or an HTTP answer outside 2xx whose code
the block's own text does not mention (a doc may show a 409 on purpose, and then says so).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asg_gateway import ASGGatewayClient
from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", flags=re.S | re.M)
VENV_BIN = ROOT / ".venv" / "bin"  # the README's commands say `.venv/bin/asg` or just `asg`
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
pytestmark = pytest.mark.slow

# How a status code reaches the test from inside a shell block: `curl` is wrapped, so every
# call appends its code to this file (the block's own `-w` is replaced by ours).
CURL = r"""
curl() {
  local out
  out=$(command curl "$@" -w '\n%{http_code}') || return $?
  printf '%s\n' "${out%$'\n'*}"
  printf '%s\n' "${out##*$'\n'}" >> "$DOCS_RUN_CODES"
}
"""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(page, line, match[1], match[2], reason[1] if reason else None))
    return found


@dataclass
class Placeholders:
    """What the docs write where a reader puts their own values."""

    base_url: str
    api_key: str
    customer_id: str
    task_id: str
    txid: str

    def fill(self, code: str) -> str:
        code = code.replace("http://localhost:8081", self.base_url)
        code = code.replace("localhost:8081", self.base_url.removeprefix("http://"))
        code = re.sub(r"sk_sandbox_(\.\.\.|…)", self.api_key, code)
        code = re.sub(r"tsk_(XXX|…)", self.task_id, code)
        code = code.replace("<bsv_txid>", self.txid)
        code = re.sub(r"cust_(\.\.\.|01J…)", self.customer_id, code)
        # A page's example registers a fixed email; each run registers its own.
        return code.replace("demo@example.com", f"{uuid.uuid4().hex[:12]}@example.com")


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("docs"), ASG_BLOCK_INTERVAL="0.5") as stack:
        stack.start_workers(3)
        yield stack


@pytest.fixture(scope="module")
def placeholders(dev_stack: Stack) -> Placeholders:
    """A customer with one task already settled and mined, for the pages that read one back."""
    customer = register(dev_stack.base_url)
    spec = {"question": "Animal?", "options": ["cat", "dog"]}
    with ASGGatewayClient(api_key=customer["api_key"], base_url=dev_stack.base_url) as client:
        task = client.submit_task("image_classification", "https://example.com/image.jpg", spec)
        receipt = client.wait_for_receipt(task["task_id"], timeout=60, interval=0.2)
    return Placeholders(
        dev_stack.base_url, customer["api_key"], customer["customer_id"], task["task_id"], receipt["txid"]
    )


def test_shell_and_python_are_fenced_so_this_test_sees_them() -> None:
    """A `bash` or `console` fence, or a bare one holding a command, would hide a block from
    the runner; every page says `sh` or `python`."""
    hidden = []
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            language, body = match[1], match[2]
            shell_like = re.search(r"^\s*(curl|\.venv/bin/|asg |asg-|make |export )", body, flags=re.M)
            if language in ("bash", "shell", "console", "py", "python3") or (not language and shell_like):
                hidden.append(f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}")

    assert not hidden


def allowed_codes(code: str) -> set[str]:
    return set(re.findall(r"\b[1-5]\d\d\b", code))


@pytest.mark.parametrize("block", [b for b in blocks() if b.not_run is None], ids=lambda b: b.name)
def test_the_block_runs_as_written(
    block: Block,
    dev_stack: Stack,
    placeholders: Placeholders,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = placeholders.fill(block.code)
    # What a reader's shell has after the README's set-up and `make run`.
    env = {
        "API_KEY": placeholders.api_key,
        "ASG_API_KEY": placeholders.api_key,
        "ASG_BASE_URL": placeholders.base_url,
        "ASG_DATA_DIR": str(dev_stack.data_dir),
        "ASG_GRPC_ADDR": dev_stack.grpc_addr,
        "ASG_WEBHOOK_SECRET": "whsec_docs_run",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if block.language == "python":
        monkeypatch.chdir(tmp_path)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, block.name, "exec"), {"__name__": "docs_run"})
        return
    codes = tmp_path / "codes"
    codes.touch()
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "DOCS_RUN_CODES": str(codes)},
    )
    assert ran.returncode == 0, f"{block.name} exited {ran.returncode}:\n{ran.stdout}\n{ran.stderr}"
    shown = allowed_codes(block.code)
    unexpected = [c for c in codes.read_text().split() if not c.startswith("2") and c not in shown]
    assert not unexpected, f"{block.name} answered {unexpected}:\n{ran.stdout}"
