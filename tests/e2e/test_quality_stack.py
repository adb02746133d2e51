"""bench/quality_stack.py end to end on a small crowd written to disk: through REST, the real
dispatcher and real Work streams, both methods decide what the domain replay decides (within
the noise of one seed), and the JSON has every figure docs/quality.md reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.core.domain.test_quality_bench import write_crowd

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"accuracy", "labels_per_item", "ece", "gave_up"}


def test_the_stack_decides_what_the_domain_replay_decides(tmp_path: Path) -> None:
    write_crowd(tmp_path)  # 120 items, 7 workers each right 85 % of the time
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "quality_stack.py"), "--data", str(tmp_path), "--seeds", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    out = json.loads(run.stdout)

    assert (out["items"], out["seeds"], out["gold"]) == (120, 1, 0.05)
    methods = out["methods"]
    assert set(methods) == {"majority", "adaptive"}
    for method, figures in methods.items():
        stack, domain = figures["stack"], figures["domain"]
        assert set(stack) >= FIGURES and set(domain) == FIGURES, method
        assert stack["gave_up"] == 0.0, method  # every item was decided through the stack
        assert abs(stack["accuracy"] - domain["accuracy"]) <= 0.06, (method, stack, domain)
        # The stack refreshes its estimates on a clock (every 0.5 s here), the replay on label
        # growth: the stack tends to learn sooner and buy a little less.
        assert abs(stack["labels_per_item"] - domain["labels_per_item"]) <= 0.8, (method, stack, domain)
    assert methods["majority"]["stack"]["labels_per_item"] >= 3.0  # the published rule's 3
    assert methods["adaptive"]["stack"]["accuracy"] >= methods["majority"]["stack"]["accuracy"] - 0.02
