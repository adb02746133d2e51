"""The webhook tables of the SQLite store: registrations, the event outbox, deliveries.

`record_task_events` and `is_registered_webhook` take the caller's transaction: the areas that
change tasks (tasks, dispatch, settlement) write their events with them, and submission checks a
callback URL in the transaction that stores the task.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import orjson

from asg_grpc.domain import ids
from asg_grpc.domain.errors import Conflict, NotFound
from asg_grpc.domain.webhooks import MAX_WEBHOOKS, Webhook, WebhookSpec
from asg_grpc.store.sqlite.area import Area
from asg_grpc.store.webhook_records import (
    AttemptResult,
    DeliveryRecord,
    DueDelivery,
    EventRecord,
    HookTarget,
    NewDelivery,
)

_WEBHOOK_COLUMNS = "webhook_id, customer_id, callback_url, events, active, created_at"


def _webhook(row: tuple) -> Webhook:
    return Webhook(row[0], row[1], row[2], tuple(orjson.loads(row[3])), bool(row[4]), row[5])


def is_registered_webhook(db: sqlite3.Connection, customer_id: str, callback_url: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM webhooks WHERE customer_id = ? AND callback_url = ? AND active = 1"
            " AND deleted_at IS NULL",
            (customer_id, callback_url),
        ).fetchone()
        is not None
    )


def record_task_events(db: sqlite3.Connection, task_ids: list[str], event_type: str, now: float) -> None:
    """Within the transaction that changed the tasks: an event each, if its customer has an
    active webhook at all (no outbox rows for customers who never registered one)."""
    db.executemany(
        "INSERT INTO events (event_id, event_type, customer_id, subject_id, callback_url, created_at)"
        " SELECT ?, ?, t.customer_id, t.task_id, t.callback_url, ? FROM tasks t"
        " WHERE t.task_id = ? AND EXISTS (SELECT 1 FROM webhooks w WHERE w.customer_id = t.customer_id"
        " AND w.active = 1 AND w.deleted_at IS NULL)",
        [
            (event_id, event_type, now, task_id)
            for event_id, task_id in zip(ids.new_ids("evt", len(task_ids), now), task_ids, strict=True)
        ],
    )


class SQLiteWebhooks(Area):
    """Webhooks: registrations, the event outbox, deliveries."""

    def create_webhook(
        self, webhook_id: str, customer_id: str, spec: WebhookSpec, sealed_secret: bytes, now: float
    ) -> Webhook:
        webhook = Webhook(webhook_id, customer_id, spec.callback_url, spec.events, True, now)
        with self._conn.write() as db:
            count = db.execute(
                "SELECT count(*) FROM webhooks WHERE customer_id = ? AND deleted_at IS NULL", (customer_id,)
            ).fetchone()[0]
            if count >= MAX_WEBHOOKS:
                raise Conflict(f"a customer may register at most {MAX_WEBHOOKS} webhooks")
            try:
                db.execute(
                    "INSERT INTO webhooks (webhook_id, customer_id, callback_url, clear_secret,"
                    " sealed_secret, events, created_at) VALUES (?, ?, ?, '', ?, ?, ?)",
                    (
                        webhook.webhook_id,
                        customer_id,
                        spec.callback_url,
                        sealed_secret,
                        orjson.dumps(spec.events).decode(),
                        now,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict("callback_url is already registered") from exc
        return webhook

    def seal_webhook_secrets(self, seal: Callable[[str, str], bytes]) -> int:
        """Seal the secrets stored in clear before they were sealed: `seal(webhook_id, secret)`.
        Returns how many; the clear text leaves the WAL too."""
        with self._conn.write() as db:
            rows = db.execute(
                "SELECT webhook_id, clear_secret FROM webhooks WHERE sealed_secret IS NULL"
            ).fetchall()
            db.executemany(
                "UPDATE webhooks SET sealed_secret = ?, clear_secret = '' WHERE webhook_id = ?",
                [(seal(webhook_id, secret), webhook_id) for webhook_id, secret in rows],
            )
        if rows:
            self._conn.truncate_wal()
        return len(rows)

    def list_webhooks(self, customer_id: str) -> list[Webhook]:
        rows = self._db.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE customer_id = ? AND deleted_at IS NULL"
            " ORDER BY created_at",
            (customer_id,),
        ).fetchall()
        return [_webhook(r) for r in rows]

    def delete_webhook(self, customer_id: str, webhook_id: str, now: float) -> None:
        """Raises NotFound for an unknown or foreign id. Its pending deliveries are abandoned."""
        with self._conn.write() as db:
            deleted = db.execute(
                "UPDATE webhooks SET deleted_at = ?, active = 0"
                " WHERE webhook_id = ? AND customer_id = ? AND deleted_at IS NULL",
                (now, webhook_id, customer_id),
            ).rowcount
            if not deleted:
                raise NotFound("webhook not found")
            db.execute(
                "UPDATE deliveries SET state = 'abandoned', next_attempt_at = NULL"
                " WHERE webhook_id = ? AND state = 'pending'",
                (webhook_id,),
            )

    def list_deliveries(self, customer_id: str, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        owned = self._db.execute(
            "SELECT 1 FROM webhooks WHERE webhook_id = ? AND customer_id = ? AND deleted_at IS NULL",
            (webhook_id, customer_id),
        ).fetchone()
        if owned is None:
            raise NotFound("webhook not found")
        rows = self._db.execute(
            "SELECT delivery_id, event_id, event_type, state, attempts, last_status, last_error,"
            " next_attempt_at, delivered_at, created_at FROM deliveries WHERE webhook_id = ?"
            " ORDER BY created_at DESC LIMIT ?",
            (webhook_id, limit),
        ).fetchall()
        return [DeliveryRecord(*r) for r in rows]

    # the outbox ------------------------------------------------------------------------------

    def pending_events(self, limit: int) -> list[EventRecord]:
        rows = self._db.execute(
            "SELECT seq, event_id, event_type, customer_id, subject_id, callback_url, created_at"
            " FROM events WHERE fanned_out = 0 ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [EventRecord(*r) for r in rows]

    def hook_targets(self, customer_id: str) -> list[HookTarget]:
        rows = self._db.execute(
            "SELECT webhook_id, callback_url, events FROM webhooks"
            " WHERE customer_id = ? AND active = 1 AND deleted_at IS NULL",
            (customer_id,),
        ).fetchall()
        return [HookTarget(r[0], r[1], tuple(orjson.loads(r[2]))) for r in rows]

    def fan_out(self, event_seqs: list[int], deliveries: list[NewDelivery], now: float) -> None:
        """Mark events handled and queue their deliveries (due now), all or nothing."""
        with self._conn.write() as db:
            db.executemany("UPDATE events SET fanned_out = 1 WHERE seq = ?", [(s,) for s in event_seqs])
            db.executemany(  # only to webhooks still active now, inside this transaction
                "INSERT INTO deliveries (delivery_id, webhook_id, event_id, event_type, payload, state,"
                " next_attempt_at, created_at) SELECT ?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7"
                " WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.webhook_id = ?2 AND w.active = 1"
                " AND w.deleted_at IS NULL)",
                [
                    (d.delivery_id, d.webhook_id, d.event_id, d.event_type, d.payload, now, now)
                    for d in deliveries
                ],
            )

    def due_deliveries(self, now: float, limit: int, exclude: set[str]) -> list[DueDelivery]:
        """Pending deliveries whose time has come (oldest first), not counting `exclude`
        (those being attempted right now)."""
        rows = self._db.execute(
            "SELECT d.delivery_id, d.webhook_id, w.callback_url, w.sealed_secret, d.event_type, d.payload,"
            " d.attempts FROM deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id"
            " WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND w.active = 1 AND w.deleted_at IS NULL"
            " ORDER BY d.next_attempt_at LIMIT ?",
            (now, limit + len(exclude)),
        ).fetchall()
        return [DueDelivery(*r) for r in rows if r[0] not in exclude][:limit]

    def record_attempts(self, attempts: list[AttemptResult], now: float) -> None:
        """The outcome of delivery attempts, in one transaction."""
        with self._conn.write() as db:
            for a in attempts:
                db.execute(
                    # Only a delivery still pending: one abandoned meanwhile (its webhook deleted or
                    # deactivated by another attempt's 410) stays abandoned.
                    "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?,"
                    " state = ?, next_attempt_at = ?, delivered_at = ?"
                    " WHERE delivery_id = ? AND state = 'pending'",
                    (
                        a.status,
                        a.error,
                        a.state,
                        a.next_attempt_at,
                        now if a.state == "delivered" else None,
                        a.delivery_id,
                    ),
                )
                if a.deactivate_webhook:
                    db.execute(
                        "UPDATE webhooks SET active = 0, deactivated_at = ?, deactivated_reason = ?"
                        " WHERE webhook_id = ?",
                        (now, "the endpoint answered 410 Gone", a.webhook_id),
                    )
                    db.execute(
                        "UPDATE deliveries SET state = 'abandoned', next_attempt_at = NULL"
                        " WHERE webhook_id = ? AND state = 'pending'",
                        (a.webhook_id,),
                    )
