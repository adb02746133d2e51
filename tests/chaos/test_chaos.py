"""The fault campaign, short: six rounds, one fault each, under load, then every invariant
(tests/chaos/campaign.py; the long run is `make chaos`, its table in docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import campaign

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SHORT = ["core SIGKILL", "workers SIGSTOP", "streams cut", "streams stall", "disk full", "webhooks 500"]


def test_a_short_fault_campaign_breaks_no_invariant(tmp_path: Path) -> None:
    report = campaign.run(
        tmp_path, SHORT, seed=7, round_seconds=5.0, quiet_timeout=60.0, log=lambda line: None
    )
    print(report.text())
    assert report.ok, report.text()
