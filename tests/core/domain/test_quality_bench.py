"""bench/quality.py end to end on a small crowd written to disk: the JSON it prints has one
entry per method with every figure docs/quality.md reports."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIGURES = {
    "accuracy",
    "labels_per_item",
    "ece",
    "ece_floor",
    "us_per_label",
    "us_per_label_with_refresh",
    "gave_up",
}


def write_crowd(folder: Path) -> None:
    rng = random.Random(0)
    with (folder / "answers.csv").open("w", newline="") as a, (folder / "truth.csv").open("w") as t:
        answers, truth = csv.writer(a), csv.writer(t)
        answers.writerow(["item", "worker", "label"])
        truth.writerow(["item", "truth"])
        for item in range(120):
            label = rng.choice("01")
            truth.writerow([item, label])
            for worker in range(7):
                right = rng.random() < 0.85
                answers.writerow([item, f"w{worker}", label if right else "10"[int(label)]])


def test_quality_bench_prints_every_figure_for_every_method(tmp_path: Path) -> None:
    write_crowd(tmp_path)
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "quality.py"), "--data", str(tmp_path), "--seeds", "1",
         "--adversary", "spammers"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    out = json.loads(run.stdout)
    assert out["seeds"] == 1 and out["adversary"] == "spammers" and out["gold"] == 0.05
    assert set(out["methods"]) == {"majority", "fixed5", "adaptive"}
    for figures in out["methods"].values():
        assert set(figures) == FIGURES
        assert 0 <= figures["accuracy"] <= 1 and 0 <= figures["ece"] <= 1
        assert 0 <= figures["ece_floor"] <= 1
        assert 1 <= figures["labels_per_item"] <= 10
    assert out["methods"]["adaptive"]["accuracy"] > out["methods"]["majority"]["accuracy"]
