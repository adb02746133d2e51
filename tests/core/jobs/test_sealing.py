"""Job credentials at rest: sealed with the core's key, bound to their job."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from asg_grpc.sealing import SealBroken, Sealer
from asg_grpc.settings import Settings, SettingsError


def test_the_key_is_generated_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sealed = Sealer.for_settings(settings).seal(b"secret", "job_1")
    key_file = tmp_path / "sealing_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Sealer.for_settings(settings).open(sealed, "job_1") == b"secret"


def test_a_sealed_value_opens_only_for_its_job_and_its_key(tmp_path: Path) -> None:
    sealer = Sealer.for_settings(Settings(data_dir=tmp_path))
    sealed = sealer.seal(b"secret", "job_1")
    assert b"secret" not in sealed
    with pytest.raises(SealBroken):
        sealer.open(sealed, "job_2")
    other = Sealer.for_settings(Settings(data_dir=tmp_path / "other"))
    with pytest.raises(SealBroken):
        other.open(sealed, "job_1")
    with pytest.raises(SealBroken):
        sealer.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "job_1")


def test_the_key_may_come_from_the_environment(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings.from_env({"ASG_DATA_DIR": str(tmp_path), "ASG_SEALING_KEY": key})
    Sealer.for_settings(settings).seal(b"x", "job")
    assert not (tmp_path / "sealing_key").exists()
    with pytest.raises(SettingsError, match="ASG_SEALING_KEY must decode to 32 bytes"):
        Sealer.for_settings(Settings(data_dir=tmp_path, sealing_key=base64.b64encode(b"short").decode()))
