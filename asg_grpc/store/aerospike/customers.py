"""Customers and their API keys on Aerospike, with the same behaviour as SQLiteStore's.

The customer record is the one truth about its keys (a map key hash → hint, dates); a key
record is only a pointer from a key hash to its customer, written before the customer record
names the key. So every change is one single-record atomic write, and a crash between two
writes leaves at most a pointer that nothing trusts (see docs/storage-aerospike.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain import ids
from asg_grpc.domain.customers import MAX_ACTIVE_KEYS, ApiKey, Customer, Registration
from asg_grpc.domain.errors import Conflict, EmailTaken, NotFound, Unauthenticated, Unavailable
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.records import GEN_EQ, UPDATE_ONLY, Records
from asg_grpc.store.customer_records import KeyOwner

# An email claimed this long ago whose customer record never appeared was left by a crash
# between the two writes; a new registration may take it over.
CLAIM_SECONDS = 30.0
# Compare-and-set rounds before a hot customer record counts as unavailable.
CAS_ROUNDS = 16
# Key pointers (hash → customer id) remembered per core: a pointer never changes once written,
# and it is trusted only when the customer record names the key, so a remembered one can only
# save the read of itself. Past this many, the memory starts over (a bound, not an LRU).
POINTER_CACHE = 100_000


KeyMap = dict[str, dict[str, Any]]  # key hash → {"h": hint, "c": created_at, "r": retire_at?}


def _active(entry: dict[str, Any] | None, now: float) -> bool:
    return entry is not None and ("r" not in entry or entry["r"] > now)


class AerospikeCustomers:
    """The customers-and-keys methods of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None) -> None:
        self._records = Records(client, url.namespace, retry)
        self._customers = url.set_prefix + "customers"
        self._emails = url.set_prefix + "emails"
        self._keys = url.set_prefix + "api_keys"
        self._pointers: dict[str, str] = {}  # key hash → customer id (POINTER_CACHE)

    def _change_customer(
        self, customer_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Read, change, write back only if nobody wrote meanwhile (POLICY_GEN_EQ); again if
        somebody did. `change` may raise to write nothing. The bins as written."""
        for _ in range(CAS_ROUNDS):
            found = self._records.get(self._customers, customer_id)
            if found is None:
                raise NotFound("customer not found")
            bins, gen = found
            changed = change(bins)
            try:
                self._records.put(self._customers, customer_id, changed, GEN_EQ, gen=gen)
            except aex.RecordGenerationError:
                continue
            return changed
        raise Unavailable("the store is busy; retry shortly")

    def _customer(self, bins: dict[str, Any]) -> Customer:
        keys: KeyMap = bins.get("keys") or {}
        unrotated = [e for e in keys.values() if "r" not in e]
        hint = max(unrotated, key=lambda e: e["c"])["h"] if unrotated else ""
        return Customer(
            bins["cid"],
            bins["name"],
            bins["email"],
            bins["tier"],
            bins["quota"],
            bins["reserved"],
            hint,
            bins["created"],
            bins.get("cmethod") or None,
        )

    # Store protocol ----------------------------------------------------------------------

    def create_customer(
        self,
        registration: Registration,
        *,
        tier: str,
        label_quota: int,
        key_hash: str,
        key_hint: str,
        now: float,
    ) -> Customer:
        customer_id = ids.new_id("cust", now)
        self._claim_email(registration.email, customer_id, now)
        if not self._records.create(self._keys, key_hash, {"cid": customer_id}):
            raise Conflict("this api key is registered already")  # 256 random bits: never
        bins = {
            "cid": customer_id,
            "name": registration.name,
            "email": registration.email,
            "tier": tier,
            "quota": label_quota,
            "reserved": 0,
            "created": now,
            "keys": {key_hash: {"h": key_hint, "c": now}},
        }
        self._records.create(self._customers, customer_id, bins)  # the id is new: it cannot exist
        return Customer(
            customer_id, registration.name, registration.email, tier, label_quota, 0, key_hint, now
        )

    def _claim_email(self, email: str, customer_id: str, now: float) -> None:
        """The email record names the customer; EmailTaken when another customer has it."""
        claim = {"cid": customer_id, "at": now}
        if self._records.create(self._emails, email, claim):
            return
        found = self._records.get(self._emails, email)
        if found is None:  # removed meanwhile: one more try decides
            if self._records.create(self._emails, email, claim):
                return
            raise EmailTaken()
        bins, gen = found
        if self._records.get(self._customers, bins["cid"]) is not None or now - bins["at"] < CLAIM_SECONDS:
            raise EmailTaken()
        try:  # a crash's leftover: take it over, unless another registration just did
            self._records.put(self._emails, email, claim, GEN_EQ, gen=gen)
        except aex.RecordGenerationError as exc:
            raise EmailTaken() from exc

    def key_owner(self, key_hash: str) -> KeyOwner | None:
        """Every customer call asks it, so one round trip: the pointer is remembered (it never
        changes), and the customer record, the one truth about its keys, is read every time
        (only this key's entry, the tier and the default method), so a revocation or a
        rotation's end takes effect at once on every core (seed 003: "takes effect
        immediately"). An unknown hash is never remembered: its key may be registered next."""
        customer_id = self._pointers.get(key_hash)
        if customer_id is None:
            pointer = self._records.get(self._keys, key_hash)
            if pointer is None:
                return None
            customer_id = pointer[0]["cid"]
            if len(self._pointers) >= POINTER_CACHE:
                self._pointers.clear()
            self._pointers[key_hash] = customer_id
        client, full_key = self._records.client, self._records.key(self._customers, customer_id)
        operations = [
            mops.map_get_by_key("keys", key_hash, aerospike.MAP_RETURN_VALUE),
            ops.read("tier"),
            ops.read("cmethod"),
        ]
        try:
            _, _, bins = self._records.retry(lambda: client.operate(full_key, operations))
        except aex.RecordNotFound:
            return None
        if not _active(bins.get("keys") or None, time.time()):
            return None
        return KeyOwner(customer_id, bins["tier"], bins.get("cmethod") or None)

    def get_customer(self, customer_id: str) -> Customer | None:
        found = self._records.get(self._customers, customer_id)
        return None if found is None else self._customer(found[0])

    def revoke_key(self, key_hash: str, now: float) -> None:
        pointer = self._records.get(self._keys, key_hash)
        if pointer is None:
            return

        def revoke(bins: dict[str, Any]) -> dict[str, Any]:
            keys: KeyMap = bins.get("keys") or {}
            if key_hash in keys:
                keys[key_hash] = {**keys[key_hash], "r": now}
            return {"keys": keys}

        with contextlib.suppress(NotFound):
            self._change_customer(pointer[0]["cid"], revoke)

    def rotate_key(
        self, old_key_hash: str, new_key_hash: str, new_key_hint: str, now: float, retire_at: float
    ) -> tuple[ApiKey, ApiKey]:
        pointer = self._records.get(self._keys, old_key_hash)
        if pointer is None:
            raise Unauthenticated("invalid api key")
        customer_id = pointer[0]["cid"]
        # The pointer first: until the customer record names the new key, it authenticates nothing.
        if not self._records.create(self._keys, new_key_hash, {"cid": customer_id}):
            raise Conflict("this api key is registered already")
        retired: dict[str, ApiKey] = {}

        def rotate(bins: dict[str, Any]) -> dict[str, Any]:
            keys: KeyMap = bins.get("keys") or {}
            old = keys.get(old_key_hash)
            if not _active(old, now):
                raise Unauthenticated("invalid api key")
            assert old is not None
            retire = retire_at if "r" not in old else min(old["r"], retire_at)
            keys[old_key_hash] = {**old, "r": retire}
            if sum(_active(e, now) for e in keys.values()) >= MAX_ACTIVE_KEYS:
                raise Conflict(
                    f"at most {MAX_ACTIVE_KEYS} keys may be active at once;"
                    " rotate with grace_seconds 0 or wait for older keys to expire"
                )
            keys[new_key_hash] = {"h": new_key_hint, "c": now}
            retired["old"] = ApiKey(old["h"], old["c"], retire)
            # Keys past their end never authenticate again: the record forgets them.
            return {"keys": {h: e for h, e in keys.items() if _active(e, now)}}

        try:
            self._change_customer(customer_id, rotate)
        except NotFound as exc:
            self._records.remove(self._keys, new_key_hash)  # the unused pointer (harmless if left)
            raise Unauthenticated("invalid api key") from exc
        except (Unauthenticated, Conflict):
            self._records.remove(self._keys, new_key_hash)
            raise
        return ApiKey(new_key_hint, now, None), retired["old"]

    def active_keys(self, customer_id: str, now: float) -> list[ApiKey]:
        found = self._records.get(self._customers, customer_id)
        keys: KeyMap = (found[0].get("keys") or {}) if found else {}
        active = [ApiKey(e["h"], e["c"], e.get("r")) for e in keys.values() if _active(e, now)]
        return sorted(active, key=lambda k: k.created_at, reverse=True)

    def set_customer_tier(self, customer_id: str, tier: str, label_quota: int) -> Customer:
        return self._update_customer(customer_id, {"tier": tier, "quota": label_quota})

    def set_customer_consensus(self, customer_id: str, method: str | None) -> Customer:
        # "" rather than a null bin: writing None would drop the bin, which reads the same.
        return self._update_customer(customer_id, {"cmethod": method or ""})

    def _update_customer(self, customer_id: str, bins: dict[str, Any]) -> Customer:
        try:
            self._records.put(self._customers, customer_id, bins, UPDATE_ONLY)
        except aex.RecordNotFound as exc:
            raise NotFound("customer not found") from exc
        customer = self.get_customer(customer_id)
        assert customer is not None
        return customer
