"""No dead code in the product packages: vulture, configured in pyproject.toml ([tool.vulture]),
finds nothing unused beyond scripts/vulture_whitelist.py, whose every entry says who uses it.
Beside tests/core/test_layering.py because it, too, reads every package's source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def vulture(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vulture", *extra], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_vulture_finds_no_unused_code() -> None:
    found = vulture()

    assert found.returncode == 0, f"unused code (delete it, or whitelist it with a reason):\n{found.stdout}"


def test_vulture_reports_an_unused_function(tmp_path: Path) -> None:
    # The check can fail: the same configuration flags a function nobody calls.
    (tmp_path / "dead.py").write_text("def never_called() -> None:\n    pass\n")

    found = vulture(str(tmp_path))

    assert found.returncode != 0 and "never_called" in found.stdout
