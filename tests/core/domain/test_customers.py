"""Registration rules and API keys, as pure functions: a key is shown once, stored as SHA-256,
recognisable by its hint, never recoverable from what is kept."""

from __future__ import annotations

import hashlib
import re

import pytest

from asg_grpc.domain.customers import (
    Customer,
    Registration,
    hash_token,
    key_hint,
    new_api_key,
    validate_registration,
)
from asg_grpc.domain.errors import ValidationError


def test_registration_is_trimmed_and_the_email_lower_cased() -> None:
    assert validate_registration("  Demo ", " Demo@Example.COM ") == Registration(
        name="Demo", email="demo@example.com"
    )


@pytest.mark.parametrize(
    ("name", "email", "field"),
    [
        ("", "demo@example.com", "name"),
        ("   ", "demo@example.com", "name"),
        ("n" * 201, "demo@example.com", "name"),
        ("Demo", "", "email"),
        ("Demo", "  ", "email"),
        ("Demo", "demo", "email"),
        ("Demo", "demo@example", "email"),
        ("Demo", "@example.com", "email"),
        ("Demo", "demo@.com", "email"),
        ("Demo", "de mo@example.com", "email"),
        ("Demo", "a@b@example.com", "email"),
        ("Demo", "a" * 243 + "@example.com", "email"),
    ],
)
def test_bad_registration_names_the_field(name: str, email: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_registration(name, email)

    assert info.value.field == field
    assert info.value.message.startswith(f"{field} ")


def test_name_is_checked_before_email() -> None:
    with pytest.raises(ValidationError) as info:
        validate_registration("", "not-an-email")

    assert info.value.field == "name"


def test_limits_are_inclusive() -> None:
    email = "a" * 242 + "@example.com"
    assert len(email) == 254

    reg = validate_registration("n" * 200, email)

    assert (len(reg.name), reg.email) == (200, email)


@pytest.mark.parametrize(("environment", "prefix"), [("sandbox", "sk_sandbox_"), ("live", "sk_live_")])
def test_new_keys_carry_their_environment_and_are_unique(environment: str, prefix: str) -> None:
    keys = {new_api_key(environment) for _ in range(100)}

    assert len(keys) == 100
    for key in keys:
        assert re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9_-]{43}", key), key


def test_sandbox_is_the_default_environment() -> None:
    assert new_api_key().startswith("sk_sandbox_")


def test_hash_is_the_sha256_hex_of_the_key() -> None:
    key = "sk_sandbox_abc"

    assert hash_token(key) == hashlib.sha256(b"sk_sandbox_abc").hexdigest()
    assert hash_token(key) != hash_token(key + "d")
    assert key not in hash_token(key)


def test_hint_shows_the_start_and_the_last_four_only() -> None:
    key = "sk_sandbox_" + "x" * 39 + "9f2c"

    hint = key_hint(key)

    assert hint == "sk_sand…9f2c"
    assert len(hint) < len(key) // 4
    assert key_hint(new_api_key()).startswith("sk_sand…")


def test_quota_remaining_never_goes_negative() -> None:
    def customer(reserved: int) -> Customer:
        return Customer("cust_1", "Demo", "d@e.co", "sandbox", 500, reserved, "sk_sand…0000", 0.0)

    assert customer(0).quota_remaining == 500
    assert customer(498).quota_remaining == 2
    assert customer(500).quota_remaining == 0
    assert customer(510).quota_remaining == 0
