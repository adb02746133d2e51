"""The customers area of the SQLite store: customers, their API keys (hashes only), tiers."""

from __future__ import annotations

import sqlite3
import time

from asg_grpc.domain import ids
from asg_grpc.domain.customers import MAX_ACTIVE_KEYS, ApiKey, Customer, Registration
from asg_grpc.domain.errors import Conflict, EmailTaken, NotFound, Unauthenticated
from asg_grpc.store.customer_records import KeyOwner
from asg_grpc.store.sqlite.area import Area

# A key authenticates until its revoked_at (set by a rotation's grace period or a revocation).
_ACTIVE_KEY = "(a.revoked_at IS NULL OR a.revoked_at > ?)"


_CUSTOMER_SELECT = (
    "SELECT c.customer_id, c.name, c.email, c.tier, c.label_quota, c.labels_reserved,"
    " (SELECT hint FROM api_keys k WHERE k.customer_id = c.customer_id AND k.revoked_at IS NULL"
    "  ORDER BY k.created_at DESC LIMIT 1), c.created_at, c.consensus_method FROM customers c"
)


def _customer(row: tuple) -> Customer:
    customer_id, name, email, tier, label_quota, labels_reserved, hint, created_at, method = row
    return Customer(
        customer_id, name, email, tier, label_quota, labels_reserved, hint or "", created_at, method
    )


class SQLiteCustomers(Area):
    """Billing and customers: accounts, their API keys and tiers."""

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
        try:
            with self._conn.write() as db:
                db.execute(
                    "INSERT INTO customers (customer_id, name, email, tier, label_quota, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (customer_id, registration.name, registration.email, tier, label_quota, now),
                )
                db.execute(
                    "INSERT INTO api_keys (key_hash, customer_id, hint, created_at) VALUES (?, ?, ?, ?)",
                    (key_hash, customer_id, key_hint, now),
                )
        except sqlite3.IntegrityError as exc:
            if "customers.email" in str(exc):
                raise EmailTaken() from exc
            raise
        return Customer(
            customer_id, registration.name, registration.email, tier, label_quota, 0, key_hint, now
        )

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._db.execute(_CUSTOMER_SELECT + " WHERE c.customer_id = ?", (customer_id,)).fetchone()
        return _customer(row) if row else None

    def revoke_key(self, key_hash: str, now: float) -> None:
        with self._conn.write() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ?", (now, key_hash))

    def rotate_key(
        self, old_key_hash: str, new_key_hash: str, new_key_hint: str, now: float, retire_at: float
    ) -> tuple[ApiKey, ApiKey]:
        with self._conn.write() as db:
            row = db.execute(
                "SELECT customer_id, hint, created_at, revoked_at FROM api_keys a"
                " WHERE a.key_hash = ? AND " + _ACTIVE_KEY,
                (old_key_hash, now),
            ).fetchone()
            if row is None:
                raise Unauthenticated("invalid api key")
            customer_id, old_hint, old_created, old_retire = row
            retire_at = retire_at if old_retire is None else min(old_retire, retire_at)
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ?", (retire_at, old_key_hash))
            (active,) = db.execute(
                "SELECT count(*) FROM api_keys a WHERE a.customer_id = ? AND " + _ACTIVE_KEY,
                (customer_id, now),
            ).fetchone()
            if active >= MAX_ACTIVE_KEYS:  # rolled back: the old key keeps its expiry
                raise Conflict(
                    f"at most {MAX_ACTIVE_KEYS} keys may be active at once;"
                    " rotate with grace_seconds 0 or wait for older keys to expire"
                )
            db.execute(
                "INSERT INTO api_keys (key_hash, customer_id, hint, created_at) VALUES (?, ?, ?, ?)",
                (new_key_hash, customer_id, new_key_hint, now),
            )
        return ApiKey(new_key_hint, now, None), ApiKey(old_hint, old_created, retire_at)

    def active_keys(self, customer_id: str, now: float) -> list[ApiKey]:
        rows = self._db.execute(
            "SELECT hint, created_at, revoked_at FROM api_keys a WHERE a.customer_id = ? AND "
            + _ACTIVE_KEY
            + " ORDER BY a.created_at DESC",
            (customer_id, now),
        ).fetchall()
        return [ApiKey(*row) for row in rows]

    def key_owner(self, key_hash: str) -> KeyOwner | None:
        row = self._db.execute(
            "SELECT a.customer_id, c.tier, c.consensus_method FROM api_keys a"
            " JOIN customers c ON c.customer_id = a.customer_id"
            " WHERE a.key_hash = ? AND " + _ACTIVE_KEY,
            (key_hash, time.time()),
        ).fetchone()
        return KeyOwner(row[0], row[1], row[2]) if row else None

    def set_customer_tier(self, customer_id: str, tier: str, label_quota: int) -> Customer:
        return self._update(customer_id, "tier = ?, label_quota = ?", (tier, label_quota))

    def set_customer_consensus(self, customer_id: str, method: str | None) -> Customer:
        return self._update(customer_id, "consensus_method = ?", (method,))

    def _update(self, customer_id: str, assignments: str, values: tuple[object, ...]) -> Customer:
        """The customer after `SET assignments`; NotFound for an unknown customer."""
        with self._conn.write() as db:
            changed = db.execute(
                f"UPDATE customers SET {assignments} WHERE customer_id = ?", (*values, customer_id)
            ).rowcount
        if not changed:
            raise NotFound("customer not found")
        customer = self.get_customer(customer_id)
        assert customer is not None
        return customer

    def first_task_at(self, customer_id: str) -> float | None:
        row = self._db.execute(
            "SELECT MIN(created_at) FROM tasks WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return row[0]
