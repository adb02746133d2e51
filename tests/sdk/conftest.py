"""The SDK reads ASG_API_KEY; a value in the developer's shell must not leak into the tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_api_key_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASG_API_KEY", raising=False)
