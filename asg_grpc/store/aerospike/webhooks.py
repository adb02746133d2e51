"""Webhooks, the event outbox and deliveries on Aerospike, with SQLiteStore's behaviour.

The webhook record is the truth about a webhook (`active`, `deleted`); the customer record's
`hooks` map (webhook id → callback URL) is the maintained list of a customer's webhooks, changed
by compare-and-set so the limit and the one-URL-once rule hold across cores. A delivery is keyed
by its event and webhook, so fanning an event out again after a crash makes no second delivery;
its id is that of the first fan-out, found back through a pointer. See docs/storage-aerospike.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import map_operations as mops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain.errors import Conflict, NotFound, Unavailable
from asg_grpc.domain.webhooks import MAX_WEBHOOKS, Webhook, WebhookSpec
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.outbox import Outbox
from asg_grpc.store.aerospike.records import GEN_EQ, UPDATE_ONLY, Records, ensure_index, query
from asg_grpc.store.webhook_records import (
    AttemptResult,
    DeliveryRecord,
    DueDelivery,
    EventRecord,
    HookTarget,
    NewDelivery,
)

MAX_INT = 2**63 - 1
_PENDING = exp.Eq(exp.StrBin("state"), "pending").compile()


def _ms(at: float) -> int:
    return int(at * 1000)


def _webhook(b: dict[str, Any]) -> Webhook:
    return Webhook(b["wid"], b["owner"], b["url"], tuple(b["events"]), b["active"] == 1, b["created"])


def _delivery(b: dict[str, Any]) -> DeliveryRecord:
    return DeliveryRecord(
        b["did"],
        b["eid"],
        b["etype"],
        b["state"],
        b["attempts"],
        b.get("status"),
        b.get("err"),
        b.get("next"),
        b.get("delivered"),
        b["created"],
    )


class AerospikeWebhooks:
    """The webhook methods of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None) -> None:
        self._wrecords = records = Records(client, url.namespace, retry)
        self._wcustomers = url.set_prefix + "customers"
        self._hooks = url.set_prefix + "webhooks"
        self._events = url.set_prefix + "events"
        self._deliveries = url.set_prefix + "deliveries"
        self._delivery_ids = url.set_prefix + "delivery_ids"
        self._woutbox = Outbox(records, url)
        ns = url.namespace
        ensure_index(records, "dwid", aerospike.INDEX_STRING, f"{ns}_delivery_webhook")
        ensure_index(records, "dnext", aerospike.INDEX_NUMERIC, f"{ns}_delivery_next")

    def _wop(self, set_name: str, key: str, operations: list[Any], expression: Any = None) -> bool:
        client, full_key = self._wrecords.client, self._wrecords.key(set_name, key)
        policy: dict[str, Any] = dict(UPDATE_ONLY)
        if expression is not None:
            policy["expressions"] = expression
        try:
            self._wrecords.retry(lambda: client.operate(full_key, operations, None, policy))
        except (aex.FilteredOut, aex.RecordNotFound):
            return False
        return True

    def _live_hooks(self, customer_id: str) -> tuple[list[dict[str, Any]], dict[str, str], int]:
        """The customer's webhooks not deleted (records), its `hooks` map, and the generation."""
        found = self._wrecords.get(self._wcustomers, customer_id)
        if found is None:
            return [], {}, 0
        listed: dict[str, str] = found[0].get("hooks") or {}
        live = []
        for webhook_id in listed:
            hook = self._wrecords.get(self._hooks, webhook_id)
            if hook is not None and "deleted" not in hook[0]:
                live.append(hook[0])
        return live, listed, found[1]

    # registrations -----------------------------------------------------------------------

    def create_webhook(
        self, webhook_id: str, customer_id: str, spec: WebhookSpec, sealed_secret: bytes, now: float
    ) -> Webhook:
        """1. the webhook record CREATE_ONLY (unlisted: nothing targets it yet); 2. listed in
        the customer's `hooks` by compare-and-set, checking the limit and the URL; refused →
        the record removed (left over, it is harmless: nothing lists it)."""
        bins = {
            "wid": webhook_id,
            "owner": customer_id,
            "url": spec.callback_url,
            "events": list(spec.events),
            "active": 1,
            "created": now,
            "sealed": sealed_secret,
        }
        self._wrecords.create(self._hooks, webhook_id, bins)
        for _ in range(16):
            live, listed, gen = self._live_hooks(customer_id)
            if webhook_id in listed:
                return _webhook(bins)  # a retried try of ours listed it
            refusal = None
            if len(live) >= MAX_WEBHOOKS:
                refusal = Conflict(f"a customer may register at most {MAX_WEBHOOKS} webhooks")
            elif any(h["url"] == spec.callback_url for h in live):
                refusal = Conflict("callback_url is already registered")
            if refusal is not None:
                self._wrecords.remove(self._hooks, webhook_id)
                raise refusal
            # Entries of deleted webhooks are dropped on the way (a crash left them listed).
            keep = {h["wid"]: h["url"] for h in live}
            keep[webhook_id] = spec.callback_url
            try:
                self._wrecords.put(self._wcustomers, customer_id, {"hooks": keep}, GEN_EQ, gen=gen)
            except aex.RecordGenerationError:
                continue
            return _webhook(bins)
        raise Unavailable("the customer is being changed; retry shortly")

    def seal_webhook_secrets(self, seal: Callable[[str, str], bytes]) -> int:
        """Webhooks on Aerospike were sealed from the first write: none is stored in clear."""
        return 0

    def list_webhooks(self, customer_id: str) -> list[Webhook]:
        live, _, _ = self._live_hooks(customer_id)
        return [_webhook(h) for h in sorted(live, key=lambda h: h["created"])]

    def is_registered_webhook(self, customer_id: str, callback_url: str) -> bool:
        live, _, _ = self._live_hooks(customer_id)
        return any(h["url"] == callback_url and h["active"] == 1 for h in live)

    def delete_webhook(self, customer_id: str, webhook_id: str, now: float) -> None:
        """1. the record `deleted` (the truth: from here nothing is delivered to it); 2. its
        pending deliveries abandoned; 3. unlisted from the customer. A crash in between: step 2
        is redone by `due_deliveries` when it meets them, step 3 by the next create."""
        found = self._wrecords.get(self._hooks, webhook_id)
        if found is None or found[0]["owner"] != customer_id or "deleted" in found[0]:
            raise NotFound("webhook not found")
        gone = [ops.write("deleted", now), ops.write("active", 0)]
        if not self._wop(self._hooks, webhook_id, gone, exp.Not(exp.BinExists("deleted")).compile()):
            raise NotFound("webhook not found")
        self._abandon(webhook_id)
        with contextlib.suppress(aex.RecordNotFound):
            self._wrecords.retry(
                lambda: self._wrecords.client.operate(
                    self._wrecords.key(self._wcustomers, customer_id),
                    [mops.map_remove_by_key("hooks", webhook_id, aerospike.MAP_RETURN_NONE)],
                )
            )

    def _abandon(self, webhook_id: str) -> None:
        abandon = [ops.write("state", "abandoned"), ops.write("next", None), ops.write("dnext", None)]
        for d in query(self._wrecords, self._deliveries, predicates.equals("dwid", webhook_id)):
            if d["state"] == "pending":
                self._wop(self._deliveries, d["key"], abandon, _PENDING)

    def list_deliveries(self, customer_id: str, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        found = self._wrecords.get(self._hooks, webhook_id)
        if found is None or found[0]["owner"] != customer_id or "deleted" in found[0]:
            raise NotFound("webhook not found")
        rows = query(self._wrecords, self._deliveries, predicates.equals("dwid", webhook_id))
        rows.sort(key=lambda d: d["created"], reverse=True)
        return [_delivery(d) for d in rows[:limit]]

    # the outbox --------------------------------------------------------------------------

    def pending_events(self, limit: int) -> list[EventRecord]:
        """Emits what a crash left marked first, then the events not fanned out, by seq."""
        self._woutbox.repair()
        rows = query(self._wrecords, self._events, predicates.between("pend", 1, MAX_INT))
        rows.sort(key=lambda e: e["pend"])
        return [
            EventRecord(
                e["pend"], e["eid"], e["type"], e["owner"], e["subject"], e.get("callback"), e["created"]
            )
            for e in rows[:limit]
        ]

    def hook_targets(self, customer_id: str) -> list[HookTarget]:
        live, _, _ = self._live_hooks(customer_id)
        return [HookTarget(h["wid"], h["url"], tuple(h["events"])) for h in live if h["active"] == 1]

    def fan_out(self, event_seqs: list[int], deliveries: list[NewDelivery], now: float) -> None:
        """Deliveries first (each keyed by event and webhook, CREATE_ONLY; only to webhooks
        active now), then the events marked handled: a crash in between fans out again and
        makes no second delivery."""
        hooks: dict[str, bool] = {}
        for d in deliveries:
            if d.webhook_id not in hooks:
                found = self._wrecords.get(self._hooks, d.webhook_id)
                hooks[d.webhook_id] = found is not None and found[0]["active"] == 1
            if not hooks[d.webhook_id]:
                continue
            key = f"{d.event_id}:{d.webhook_id}"
            self._wrecords.create(self._delivery_ids, d.delivery_id, {"key": key})
            bins = {
                "key": key,
                "did": d.delivery_id,
                "dwid": d.webhook_id,
                "eid": d.event_id,
                "etype": d.event_type,
                "payload": d.payload,
                "state": "pending",
                "attempts": 0,
                "next": now,
                "dnext": _ms(now),
                "created": now,
            }
            self._wrecords.create(self._deliveries, key, bins)
        if event_seqs:
            wanted = set(event_seqs)
            between = predicates.between("pend", min(event_seqs), max(event_seqs))
            for e in query(self._wrecords, self._events, between):
                if e["pend"] in wanted:
                    self._wop(self._events, f"{e['subject']}:{e['type']}", [ops.write("pend", None)])

    def due_deliveries(self, now: float, limit: int, exclude: set[str]) -> list[DueDelivery]:
        rows = query(self._wrecords, self._deliveries, predicates.between("dnext", 0, _ms(now)))
        rows = [d for d in rows if d["state"] == "pending" and d["next"] <= now and d["did"] not in exclude]
        rows.sort(key=lambda d: d["next"])
        out: list[DueDelivery] = []
        hooks: dict[str, dict[str, Any] | None] = {}
        for d in rows:
            if len(out) == limit:
                break
            if d["dwid"] not in hooks:
                found = self._wrecords.get(self._hooks, d["dwid"])
                hooks[d["dwid"]] = None if found is None else found[0]
            hook = hooks[d["dwid"]]
            if hook is None or hook["active"] != 1:
                self._abandon(d["dwid"])  # finishes a deletion or deactivation a crash cut off
                continue
            out.append(
                DueDelivery(
                    d["did"],
                    d["dwid"],
                    hook["url"],
                    bytes(hook["sealed"]),
                    d["etype"],
                    bytes(d["payload"]),
                    d["attempts"],
                )
            )
        return out

    def record_attempts(self, attempts: list[AttemptResult], now: float) -> None:
        """Each on its delivery, only while it is pending (one abandoned meanwhile stays so)."""
        for a in attempts:
            pointer = self._wrecords.get(self._delivery_ids, a.delivery_id)
            if pointer is not None:
                operations = [
                    ops.increment("attempts", 1),
                    ops.write("status", a.status),
                    ops.write("err", a.error),
                    ops.write("state", a.state),
                    ops.write("next", a.next_attempt_at),
                    ops.write("dnext", None if a.next_attempt_at is None else _ms(a.next_attempt_at)),
                    ops.write("delivered", now if a.state == "delivered" else None),
                ]
                did_is = exp.And(_PENDING_EXPR, exp.Eq(exp.StrBin("did"), a.delivery_id)).compile()
                self._wop(self._deliveries, pointer[0]["key"], operations, did_is)
            if a.deactivate_webhook:
                gone = [
                    ops.write("active", 0),
                    ops.write("deactivated", now),
                    ops.write("reason", "the endpoint answered 410 Gone"),
                ]
                self._wop(self._hooks, a.webhook_id, gone)
                self._abandon(a.webhook_id)


_PENDING_EXPR = exp.Eq(exp.StrBin("state"), "pending")
