"""Tiers, prices and their configuration (ASG_TIERS): what a task costs and who may call how fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asg_grpc.domain.tiers import (
    RateLimit,
    TierConfigError,
    cost_sats,
    default_tiers,
    parse_tiers,
    tier_named,
)
from asg_grpc.settings import Settings, SettingsError


def test_a_three_label_task_costs_1000_sats_at_the_default_prices() -> None:
    assert cost_sats(default_tiers()["sandbox"], 3) == 1000


def test_cost_is_the_task_price_plus_the_label_price_per_label() -> None:
    pro = default_tiers()["pro"]

    assert cost_sats(pro, 0) == pro.task_price_sats
    assert cost_sats(pro, 5) == pro.task_price_sats + 5 * pro.label_price_sats


def test_cost_refuses_a_negative_label_count() -> None:
    with pytest.raises(ValueError, match="labels_collected"):
        cost_sats(default_tiers()["sandbox"], -1)


def test_a_tier_no_longer_configured_is_sandbox() -> None:
    tiers = default_tiers()

    assert tier_named(tiers, "pro") is tiers["pro"]
    assert tier_named(tiers, "gold") is tiers["sandbox"]
    assert tier_named(tiers, None) is tiers["sandbox"]


def test_sandbox_and_pro_differ_in_price_quota_and_rate_limit() -> None:
    tiers = default_tiers()
    sandbox, pro = tiers["sandbox"], tiers["pro"]

    assert sandbox.label_quota == 500
    assert (sandbox.label_price_sats, sandbox.task_price_sats) == (300, 100)
    assert pro.label_quota > sandbox.label_quota
    assert pro.label_price_sats != sandbox.label_price_sats
    assert pro.rate_limit.per_second > sandbox.rate_limit.per_second
    assert pro.rate_limit.burst > sandbox.rate_limit.burst


def test_asg_tiers_overrides_only_the_fields_it_gives() -> None:
    tiers = parse_tiers('{"pro": {"label_price_sats": 200, "rate_limit": {"burst": 9}}}', default_tiers())

    assert tiers["pro"].label_price_sats == 200
    assert tiers["pro"].rate_limit == RateLimit(per_second=200.0, burst=9)
    assert tiers["pro"].task_price_sats == default_tiers()["pro"].task_price_sats
    assert tiers["sandbox"] == default_tiers()["sandbox"]


def test_asg_tiers_adds_a_tier_that_gives_every_field() -> None:
    text = json.dumps(
        {
            "enterprise": {
                "label_price_sats": 150,
                "task_price_sats": 0,
                "label_quota": 10**9,
                "rate_limit": {"per_second": 1000, "burst": 2000},
            }
        }
    )

    enterprise = parse_tiers(text, default_tiers())["enterprise"]

    assert cost_sats(enterprise, 3) == 450
    assert enterprise.rate_limit == RateLimit(1000.0, 2000)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"gold": {"label_price_sats": 1}}', "tier 'gold' is new and needs"),
        ('{"pro": {"label_price": 1}}', "unknown field 'label_price'"),
        ('{"pro": {"label_price_sats": -1}}', "label_price_sats must be at least 1"),
        # A label paid 0 sats would be a 0-satoshi output no ledger accepts: no payout at all.
        ('{"pro": {"label_price_sats": 0}}', "label_price_sats must be at least 1"),
        ('{"pro": {"label_price_sats": 1.5}}', "label_price_sats must be an integer"),
        ('{"pro": {"label_quota": 0}}', "label_quota must be at least 1"),
        ('{"pro": {"rate_limit": {"per_second": 0}}}', "per_second must be more than 0"),
        ('{"pro": {"rate_limit": {"burst": 0}}}', "burst must be at least 1"),
        ('{"Pro Tier": {}}', "tier name"),
    ],
)
def test_bad_tier_configuration_names_the_tier_and_field(text: str, problem: str) -> None:
    with pytest.raises(TierConfigError, match=problem):
        parse_tiers(text, default_tiers())


def test_settings_read_asg_tiers_and_name_it_in_errors() -> None:
    settings = Settings.from_env({"ASG_TIERS": '{"pro": {"task_price_sats": 7}}'})

    assert settings.tiers["pro"].task_price_sats == 7
    with pytest.raises(SettingsError, match=r"^ASG_TIERS tier 'pro' label_quota"):
        Settings.from_env({"ASG_TIERS": '{"pro": {"label_quota": "many"}}'})


def test_asg_tiers_may_name_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tiers.json"
    path.write_text('{"sandbox": {"label_price_sats": 1}}')

    assert Settings.from_env({"ASG_TIERS": str(path)}).tiers["sandbox"].label_price_sats == 1
    with pytest.raises(SettingsError, match="ASG_TIERS names a file that cannot be read"):
        Settings.from_env({"ASG_TIERS": str(tmp_path / "missing.json")})


def test_sandbox_label_quota_still_sets_the_sandbox_quota_unless_asg_tiers_does() -> None:
    assert Settings.from_env({"ASG_SANDBOX_LABEL_QUOTA": "42"}).tiers["sandbox"].label_quota == 42
    both = Settings.from_env(
        {"ASG_SANDBOX_LABEL_QUOTA": "42", "ASG_TIERS": '{"sandbox": {"label_quota": 7}}'}
    )
    assert both.tiers["sandbox"].label_quota == both.sandbox_label_quota == 7


def test_rate_limit_switch() -> None:
    assert Settings.from_env({}).rate_limit is True
    assert Settings.from_env({"ASG_RATE_LIMIT": "off"}).rate_limit is False
    with pytest.raises(SettingsError, match="ASG_RATE_LIMIT"):
        Settings.from_env({"ASG_RATE_LIMIT": "sometimes"})
