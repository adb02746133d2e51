"""The simulated labeler's answer key: a truth file, or a truth derived from the data URL.

Deriving the truth from a hash of the data URL means several simulated agents without a
truth file still agree with each other on most tasks, as real labelers would, so consensus
is reached and the benchmark exercises the happy path.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from worker_agent.errors import ConfigError


def load(path: Path) -> dict[str, str]:
    """Read `data_url,label` CSV (with that header) or a JSON object data_url → label."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"truth file {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _from_json(path, text)
    return _from_csv(path, text)


def _from_json(path: Path, text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"truth file {path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(f"truth file {path}: expected a JSON object of data_url → label strings")
    return data


def _from_csv(path: Path, text: str) -> dict[str, str]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"data_url", "label"} <= {f.strip() for f in reader.fieldnames}:
        raise ConfigError(f"truth file {path}: CSV needs a header line 'data_url,label'")
    truth: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not row.get("data_url") or not row.get("label"):
            raise ConfigError(f"truth file {path}: line {line} needs both data_url and label")
        truth[row["data_url"]] = row["label"]
    return truth


def derived(data_url: str, options: Sequence[str]) -> str:
    """A stable 'truth' for a URL no truth file knows: the same on every agent and every run."""
    digest = hashlib.sha256(data_url.encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]
