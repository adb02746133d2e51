"""What every store does with customers and their API keys: registration, lookups by key,
rotation with a grace period and its limit, revocation, tiers; across restarts and two stores
writing one customer at once."""

from __future__ import annotations

import threading
import time

import pytest

from asg_grpc.domain.customers import MAX_ACTIVE_KEYS, Registration
from asg_grpc.domain.errors import Conflict, EmailTaken, NotFound, Unauthenticated
from tests.store.contract.conftest import OpenStore

HOUR = 3600.0


def register(store: object, email: str = "ada@example.com", key: str = "key-1") -> str:
    customer = store.create_customer(  # type: ignore[attr-defined]
        Registration("Ada", email),
        tier="sandbox",
        label_quota=100,
        key_hash=key,
        key_hint="hint-1",
        now=time.time(),
    )
    return str(customer.customer_id)


def owner_id(store: object, key_hash: str) -> str | None:
    """The customer id an API key's hash belongs to, as the callers' lookup reads it."""
    owner = store.key_owner(key_hash)  # type: ignore[attr-defined]
    return None if owner is None else str(owner.customer_id)


def test_a_registered_key_finds_its_customer_after_a_restart(open_store: OpenStore) -> None:
    customer_id = register(open_store())
    store = open_store()
    owner = store.key_owner("key-1")
    assert owner is not None
    customer = store.get_customer(owner.customer_id)
    assert customer is not None
    assert (customer.customer_id, customer.email, customer.tier, customer.key_hint) == (
        customer_id,
        "ada@example.com",
        "sandbox",
        "hint-1",
    )
    assert (customer.label_quota, customer.quota_remaining) == (100, 100)
    assert (owner.customer_id, owner.tier) == (customer_id, "sandbox")
    assert store.get_customer(customer_id) == customer
    assert store.key_owner("nope") is None


def test_an_email_registers_once(open_store: OpenStore) -> None:
    store = open_store()
    first = register(store)
    with pytest.raises(EmailTaken):
        register(open_store(), key="key-2")
    assert owner_id(store, "key-1") == first
    assert owner_id(store, "key-2") is None


def test_a_rotated_key_works_until_its_grace_ends(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    now = time.time()
    new, old = store.rotate_key("key-1", "key-2", "hint-2", now, now + HOUR)
    assert (new.key_hint, new.expires_at, old.key_hint, old.expires_at) == (
        "hint-2",
        None,
        "hint-1",
        now + HOUR,
    )
    assert owner_id(store, "key-1") == customer_id == owner_id(store, "key-2")
    assert [k.key_hint for k in store.active_keys(customer_id, now)] == ["hint-2", "hint-1"]
    assert store.get_customer(customer_id).key_hint == "hint-2"
    # Rotating the old key again cannot stretch its grace; with none, it stops at once.
    later = now + 1
    _, old = store.rotate_key("key-1", "key-3", "hint-3", later, later + 2 * HOUR)
    assert old.expires_at == now + HOUR
    at_once = time.time()
    open_store().rotate_key("key-2", "key-4", "hint-4", at_once, at_once)
    assert owner_id(store, "key-2") is None
    with pytest.raises(Unauthenticated):
        store.rotate_key("key-2", "key-5", "hint-5", later, later)
    assert owner_id(store, "key-5") is None
    with pytest.raises(Unauthenticated):
        store.rotate_key("unknown", "key-6", "hint-6", later, later)
    assert {k.key_hint for k in store.active_keys(customer_id, later)} == {"hint-1", "hint-3", "hint-4"}


def test_rotation_past_the_active_key_limit_changes_nothing(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    now = time.time()
    for n in range(2, MAX_ACTIVE_KEYS + 1):
        store.rotate_key("key-1", f"key-{n}", f"hint-{n}", now, now + HOUR)
    before = store.active_keys(customer_id, now)
    with pytest.raises(Conflict):
        store.rotate_key(f"key-{MAX_ACTIVE_KEYS}", "key-extra", "hint-extra", now, now + HOUR)
    assert owner_id(store, "key-extra") is None
    assert open_store().active_keys(customer_id, now) == before
    # With no grace the calling key makes room for its replacement.
    store.rotate_key(f"key-{MAX_ACTIVE_KEYS}", "key-extra", "hint-extra", now, now)
    assert owner_id(store, "key-extra") == customer_id


def test_a_revoked_key_stops_at_once(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    store.revoke_key("key-1", time.time())
    assert open_store().key_owner("key-1") is None
    assert store.active_keys(customer_id, time.time()) == []
    store.revoke_key("never-issued", time.time())  # a no-op, not an error


def test_a_key_revoked_through_another_store_stops_at_once(open_store: OpenStore) -> None:
    """A core that answered a key before (Aerospike remembers its pointer) refuses it as soon
    as another core revoked it: the revocation contract is "takes effect immediately"."""
    store = open_store()
    customer_id = register(store)
    assert owner_id(store, "key-1") == customer_id
    open_store().revoke_key("key-1", time.time())
    assert owner_id(store, "key-1") is None


def test_a_tier_change_keeps_the_reservations(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    customer = store.set_customer_tier(customer_id, "pro", 5000)
    assert (customer.tier, customer.label_quota, customer.labels_reserved) == ("pro", 5000, 0)
    assert open_store().key_owner("key-1").tier == "pro"
    with pytest.raises(NotFound):
        store.set_customer_tier("cust_unknown", "pro", 5000)


def test_a_customer_default_consensus_method_is_kept_and_read_with_the_key(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    assert store.get_customer(customer_id).consensus_method is None
    assert store.set_customer_consensus(customer_id, "adaptive").consensus_method == "adaptive"
    assert open_store().key_owner("key-1").consensus_method == "adaptive"
    assert open_store().get_customer(customer_id).consensus_method == "adaptive"
    assert store.set_customer_consensus(customer_id, None).consensus_method is None
    assert open_store().key_owner("key-1").consensus_method is None
    with pytest.raises(NotFound):
        store.set_customer_consensus("cust_unknown", "majority")


def test_two_stores_rotating_one_customer_lose_no_key(open_store: OpenStore) -> None:
    """Each store is a core process of its own: rotations racing on one customer all land."""
    customer_id = register(open_store())
    now = time.time()
    stores = [open_store(), open_store()]
    errors: list[BaseException] = []

    def rotate(index: int) -> None:
        try:
            for n in range(2):
                stores[index].rotate_key("key-1", f"key-{index}-{n}", f"hint-{index}-{n}", now, now + HOUR)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rotate, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(stores[0].active_keys(customer_id, now)) == 1 + 4 == MAX_ACTIVE_KEYS
    assert all(owner_id(stores[1], f"key-{i}-{n}") == customer_id for i in range(2) for n in range(2))
