"""The settlement outbox on Aerospike: the platform wallet's outputs, payout transactions, and
which worker each paid for which task, with the same behaviour as SQLiteStore's.

The settlement record is the truth and is written first: its state says how far the steps got
(`taking` → `prepared` → `accepting` → `accepted`, or `prepared` → `rejecting` → `rejected`).
Each step after it is a single-record write guarded by an expression on the record it changes
(the task or output must be free, or already name this settlement), so a repeat is harmless
and a crash is finished (or, before anything was broadcast, rolled back) by replay: nothing is
broadcast before the intent is `prepared`, and a broadcast transaction is never abandoned.
The steps are in docs/storage-aerospike.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.batch.records import Write
from aerospike_helpers.operations import expression_operations as eops
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain.errors import Conflict
from asg_grpc.domain.settlement import AgreeingLabel, SettleableTask, WorkerPayment
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.counters import dirty, read_in_chunks, write_in_chunks
from asg_grpc.store.aerospike.outbox import Outbox, mark
from asg_grpc.store.aerospike.records import UPDATE_ONLY, Records, ensure_index, query
from asg_grpc.store.settlement_records import (
    OpenSettlement,
    SettlementIntent,
    TaskSettlement,
    WalletUtxo,
)

# A settlement still `taking` this long after it was created was left by a crash: nothing of
# it was broadcast, so it is rolled back.
TAKING_SECONDS = 30.0
MAX_INT = 2**63 - 1
_SETTLEABLE = exp.And(exp.Not(exp.BinExists("sid")), exp.BinExists("topay")).compile()
_GSEQ = exp.IntBin("gseq").compile()
_SETTLED_STATUS = exp.Cond(
    exp.Eq(exp.StrBin("status"), "verified"), "settled", exp.StrBin("status")
).compile()


def _ours(sid: str, state: str | None = None) -> Any:
    """The record names this settlement (and is in `state`)."""
    named = exp.And(exp.BinExists("sid"), exp.Eq(exp.StrBin("sid"), sid))
    if state is not None:
        named = exp.And(named, exp.Eq(exp.StrBin("wstate"), state))
    return named.compile()


def _state_is(state: str) -> Any:
    return exp.Eq(exp.StrBin("sstate"), state).compile()


def _utxo_key(txid: str, vout: int) -> str:
    return f"{txid}:{vout}"


class AerospikeSettlement:
    """The settlement methods of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None) -> None:
        self._srecords = records = Records(client, url.namespace, retry)
        self._stasks = url.set_prefix + "tasks"
        self._scustomers = url.set_prefix + "customers"
        self._sworkers = url.set_prefix + "workers"
        self._wallet = url.set_prefix + "wallet"
        self._settlements = url.set_prefix + "settlements"
        self._soutbox = Outbox(records, url)
        ns = url.namespace
        ensure_index(records, "topay", aerospike.INDEX_NUMERIC, f"{ns}_task_topay")
        ensure_index(records, "wstate", aerospike.INDEX_STRING, f"{ns}_wallet_state")
        ensure_index(records, "sstate", aerospike.INDEX_STRING, f"{ns}_settlement_state")

    def _sop(self, set_name: str, key: str, operations: list[Any], expression: Any = None) -> bool:
        """One operate on an existing record, guarded by `expression`; False when the guard
        (or the record's absence) refused it."""
        client, full_key = self._srecords.client, self._srecords.key(set_name, key)
        policy: dict[str, Any] = dict(UPDATE_ONLY)
        if expression is not None:
            policy["expressions"] = expression
        try:
            self._srecords.retry(lambda: client.operate(full_key, operations, None, policy))
        except (aex.FilteredOut, aex.RecordNotFound):
            return False
        return True

    def _sop_many(self, set_name: str, changes: list[tuple[str, list[Any]]], expression: Any) -> list[bool]:
        """`_sop` for many records (key, operations), all guarded by `expression`, in batch
        writes: per record False when the guard (or the record's absence) refused it. A record
        the batch could not reach is tried once more on its own."""
        if len(changes) == 1:  # a one-task payout: a single operate costs less than a batch
            [(key, operations)] = changes
            return [self._sop(set_name, key, operations, expression)]
        policy: dict[str, Any] = {**UPDATE_ONLY, "expressions": expression}
        writes = [
            Write(self._srecords.key(set_name, key), operations, policy=policy) for key, operations in changes
        ]
        done = []
        for (key, operations), row in zip(changes, write_in_chunks(self._srecords, writes), strict=True):
            if row.result in (aex.FilteredOut.code, aex.RecordNotFound.code):
                done.append(False)
            else:
                done.append(row.result == 0 or self._sop(set_name, key, operations, expression))
        return done

    def _all_named(self, set_name: str, keys: list[str], sid: str) -> bool:
        """Do all these records name this settlement (takes of ours, retried after a timeout)?"""
        rows = read_in_chunks(self._srecords, [self._srecords.key(set_name, key) for key in keys])
        return all(meta is not None and bins.get("sid") == sid for _, meta, bins in rows)

    # the wallet ------------------------------------------------------------------------

    def add_wallet_utxos(self, utxos: list[WalletUtxo]) -> int:
        added = 0
        for u in utxos:
            bins = {"txid": u.txid, "vout": u.vout, "sats": u.satoshis, "wstate": "available"}
            added += self._srecords.create(self._wallet, _utxo_key(u.txid, u.vout), bins)
        return added

    def wallet_utxos(self, limit: int) -> list[WalletUtxo]:
        rows = query(self._srecords, self._wallet, predicates.equals("wstate", "available"))
        rows.sort(key=lambda r: r["sats"], reverse=True)
        return [WalletUtxo(r["txid"], r["vout"], r["sats"]) for r in rows[:limit]]

    def wallet_utxo_satoshis(self, txid: str, vout: int) -> int | None:
        found = self._srecords.get(self._wallet, _utxo_key(txid, vout))
        return None if found is None else int(found[0]["sats"])

    def wallet_balance(self) -> dict[str, int]:
        """A scan of the wallet set: one record per output the wallet ever held (few: one
        change output per payout); counters kept by the same writes would replace it."""
        scan = self._srecords.client.query(self._srecords.namespace, self._wallet)
        balance: dict[str, int] = defaultdict(int)
        for _, _, bins in self._srecords.retry(scan.results):
            balance[bins["wstate"]] += bins["sats"]
        return dict(balance)

    # settling --------------------------------------------------------------------------

    def settleable_tasks(self, limit: int) -> list[SettleableTask]:
        """Through the `topay` index (set by the write that verifies or ends a task with
        labels, removed by the take): oldest first by global sequence. The query reads three
        small bins of every waiting task to pick the oldest `limit`; only those are read whole
        (labels and all), and their workers' addresses, in batch reads."""
        q = self._srecords.client.query(self._srecords.namespace, self._stasks)
        q.select("tid", "topay", "sid")
        q.where(predicates.between("topay", 1, MAX_INT))
        waiting = [b for _, _, b in self._srecords.retry(q.results) if "sid" not in b and "topay" in b]
        waiting.sort(key=lambda b: b["topay"])
        keys = [self._srecords.key(self._stasks, b["tid"]) for b in waiting[:limit]]
        # Read whole now: a task taken meanwhile (sid) or paid is left out, as the query would.
        rows = [b for _, meta, b in read_in_chunks(self._srecords, keys) if meta is not None]
        rows = [r for r in rows if "sid" not in r and "topay" in r]
        workers = sorted({w for r in rows for w in (r.get("labels") or {})})
        addresses = {
            key[2]: ("" if meta is None else bins["payout"])
            for key, meta, bins in read_in_chunks(
                self._srecords, [self._srecords.key(self._sworkers, w) for w in workers]
            )
        }
        tiers: dict[str, str | None] = {}
        out = []
        for r in rows:
            ended = r["status"] != "verified"
            labels = sorted((r.get("labels") or {}).items(), key=lambda item: item[1][1])
            agreeing = [
                AgreeingLabel(worker_id, addresses.get(worker_id, ""))
                for worker_id, (option, _) in labels
                if ended or option == r.get("label")
            ]
            tier = r.get("tier")
            if tier is None:  # before tiers were recorded: its customer's, as billing prices it
                if r["owner"] not in tiers:
                    found = self._srecords.get(self._scustomers, r["owner"])
                    tiers[r["owner"]] = None if found is None else found[0]["tier"]
                tier = tiers[r["owner"]]
            out.append(SettleableTask(r["tid"], r["owner"], tier, r["wcount"], tuple(agreeing), ended=ended))
        return out

    def record_settlement(self, intent: SettlementIntent, now: float) -> None:
        """1. the intent `taking`; 2. each task taken; 3. each input reserved; 4. the change
        `pending`; 5. the intent `prepared`. Conflict, everything taken given back, when a
        task or input was taken by another (or a repair rolled this one back)."""
        sid = intent.settlement_id
        bins = {
            "sid": sid,
            "txid": intent.txid,
            "raw": intent.raw,
            "fee": intent.fee,
            "tasks": list(intent.task_ids),
            "cost": dict(intent.cost_by_task),
            "payouts": [[p.task_id, p.worker_id, vout, p.sats] for p, vout in intent.payouts],
            "inputs": [[u.txid, u.vout, u.satoshis] for u in intent.inputs],
            "sstate": "taking",
            "attempts": 0,
            "created": now,
        }
        if intent.change is not None:
            c = intent.change
            bins["change"] = [c.txid, c.vout, c.satoshis]
        if not self._srecords.create(self._settlements, sid, bins):
            found = self._srecords.get(self._settlements, sid)
            if found is None or found[0]["txid"] != intent.txid or found[0]["sstate"] != "taking":
                raise Conflict("this payout was recorded already")
        try:
            # Each task taken, in batch writes, each filtered by "no `sid`, has `topay`".
            takes = [
                (
                    task_id,
                    [
                        ops.write("sid", sid),
                        ops.write("cost", intent.cost_by_task[task_id]),
                        ops.write("topay", None),
                    ],
                )
                for task_id in intent.task_ids
            ]
            refused = [
                t
                for (t, _), ok in zip(takes, self._sop_many(self._stasks, takes, _SETTLEABLE), strict=True)
                if not ok
            ]
            if refused and not self._all_named(self._stasks, refused, sid):
                raise Conflict("a task of the payout is no longer waiting for one")
            available = exp.Eq(exp.StrBin("wstate"), "available").compile()
            reserve = [ops.write("wstate", "reserved"), ops.write("sid", sid)]
            inputs = [(_utxo_key(u.txid, u.vout), reserve) for u in intent.inputs]
            refused = [
                k
                for (k, _), ok in zip(inputs, self._sop_many(self._wallet, inputs, available), strict=True)
                if not ok
            ]
            if refused and not self._all_named(self._wallet, refused, sid):
                raise Conflict("an input of the payout is no longer available")
            if intent.change is not None:
                c = intent.change
                change = {"txid": c.txid, "vout": c.vout, "sats": c.satoshis, "wstate": "pending", "sid": sid}
                key = _utxo_key(c.txid, c.vout)
                if not self._srecords.create(self._wallet, key, change) and not self._names(
                    self._wallet, key, sid
                ):
                    raise Conflict("the payout's change output exists already")
            if not self._sop(self._settlements, sid, [ops.write("sstate", "prepared")], _state_is("taking")):
                raise Conflict("the payout was rolled back meanwhile")
        except Conflict:
            self._roll_back(sid)
            raise

    def _names(self, set_name: str, key: str, sid: str) -> bool:
        """Does the record name this settlement (a take of ours, retried after a timeout)?"""
        found = self._srecords.get(set_name, key)
        return found is not None and found[0].get("sid") == sid

    def _roll_back(self, sid: str) -> None:
        """A settlement that was never `prepared` (so never broadcast) undone: `abandoned`
        first, so its own writer cannot prepare it any more; then what it took, given back."""
        found = self._srecords.get(self._settlements, sid)
        if found is None:
            return
        bins = found[0]
        if bins["sstate"] == "taking" and not self._sop(
            self._settlements, sid, [ops.write("sstate", "abandoned")], _state_is("taking")
        ):
            return  # prepared meanwhile: it goes on
        if bins["sstate"] not in ("taking", "abandoned"):
            return
        self._release_taken(bins, inputs_to="available")
        self._srecords.remove(self._settlements, sid)

    def _release_taken(self, bins: dict[str, Any], *, inputs_to: str) -> None:
        """Each step safe to repeat: tasks waiting again, change dropped, inputs back."""
        sid = bins["sid"]
        free = [ops.write("sid", None), ops.write("cost", None), eops.expression_write("topay", _GSEQ)]
        for task_id in bins["tasks"]:
            self._sop(self._stasks, task_id, free, _ours(sid))
        if bins.get("change"):
            key = _utxo_key(bins["change"][0], bins["change"][1])
            found = self._srecords.get(self._wallet, key)
            if found is not None and found[0].get("sid") == sid and found[0]["wstate"] == "pending":
                self._srecords.remove(self._wallet, key)
        back = [ops.write("wstate", inputs_to), ops.write("sid", None)]
        for txid, vout, _ in bins["inputs"]:
            self._sop(self._wallet, _utxo_key(txid, vout), back, _ours(sid, "reserved"))

    def open_settlements(self) -> list[OpenSettlement]:
        """Prepared ones (and accepted ones whose follow-ups a crash interrupted: broadcasting
        them again is answered "accepted", which finishes them), oldest first. Finishes the
        leftovers of crashes first: rejections half done, takes never prepared."""
        now = time.time()
        for bins in query(self._srecords, self._settlements, predicates.equals("sstate", "rejecting")):
            self._finish_rejection(bins)
        for state in ("taking", "abandoned"):
            for bins in query(self._srecords, self._settlements, predicates.equals("sstate", state)):
                if state == "abandoned" or now - bins["created"] >= TAKING_SECONDS:
                    self._roll_back(bins["sid"])
        rows = [
            bins
            for state in ("prepared", "accepting")
            for bins in query(self._srecords, self._settlements, predicates.equals("sstate", state))
        ]
        rows.sort(key=lambda b: b["created"])
        return [OpenSettlement(b["sid"], b["txid"], bytes(b["raw"]), b["attempts"]) for b in rows]

    def settlement_accepted(self, settlement_id: str, now: float) -> list[WorkerPayment]:
        """`accepting` (with when), then each task settled, each input spent, the change
        available, then `accepted`. A replay while `accepting` finishes it and answers the
        payments (the first call never returned them); once `accepted`, []."""
        found = self._srecords.get(self._settlements, settlement_id)
        if found is None:
            return []
        bins = found[0]
        if bins["sstate"] == "prepared":
            marked = [ops.write("sstate", "accepting"), ops.write("decided", now)]
            if not self._sop(self._settlements, settlement_id, marked, _state_is("prepared")):
                return self.settlement_accepted(settlement_id, now)  # changed meanwhile: re-read
            bins = {**bins, "sstate": "accepting", "decided": now}
        if bins["sstate"] != "accepting":
            return []
        sid, at = settlement_id, bins["decided"]
        settle = [
            eops.expression_write("status", _SETTLED_STATUS),
            ops.write("txid", bins["txid"]),
            ops.write("settled", at),
            ops.write("updated", at),
            dirty(),  # a settled task counts as settled (counters.py)
        ]
        # Each task settled in batch writes filtered by naming us; only a verified task becomes
        # settled, with its event (an ended one keeps its status). Then their follow-ups.
        tasks: list[str] = bins["tasks"]
        keys = [self._srecords.key(self._stasks, task_id) for task_id in tasks]
        rows = read_in_chunks(self._srecords, keys)
        changes = [
            (
                task_id,
                settle
                + (mark("task.settled", at) if meta is not None and task["status"] == "verified" else []),
            )
            for task_id, (_, meta, task) in zip(tasks, rows, strict=True)
        ]
        settled = [
            t
            for (t, _), ok in zip(changes, self._sop_many(self._stasks, changes, _ours(sid)), strict=True)
            if ok
        ]
        self._soutbox.emit_many(settled)
        for txid, vout, _ in bins["inputs"]:
            self._sop(
                self._wallet, _utxo_key(txid, vout), [ops.write("wstate", "spent")], _ours(sid, "reserved")
            )
        if bins.get("change"):
            key = _utxo_key(bins["change"][0], bins["change"][1])
            self._sop(self._wallet, key, [ops.write("wstate", "available")], _ours(sid, "pending"))
        if not self._sop(self._settlements, sid, [ops.write("sstate", "accepted")], _state_is("accepting")):
            return []  # another replay finished it and answered
        paid: dict[tuple[str, int], tuple[int, list[str]]] = {}
        for task_id, worker_id, vout, sats in sorted(bins["payouts"]):
            total, tasks = paid.get((worker_id, vout), (0, []))
            tasks.append(task_id)
            paid[(worker_id, vout)] = (total + sats, tasks)
        return [
            WorkerPayment(worker_id, bins["txid"], vout, sats, tuple(tasks), at)
            for (worker_id, vout), (sats, tasks) in paid.items()
        ]

    def settlement_rejected(self, settlement_id: str, detail: str, inputs_spent: bool, now: float) -> None:
        marked = [
            ops.write("sstate", "rejecting"),
            ops.write("decided", now),
            ops.write("err", detail),
            ops.write("lost", inputs_spent),
        ]
        if not self._sop(self._settlements, settlement_id, marked, _state_is("prepared")):
            return
        found = self._srecords.get(self._settlements, settlement_id)
        if found is not None:
            self._finish_rejection(found[0])

    def _finish_rejection(self, bins: dict[str, Any]) -> None:
        if bins["sstate"] != "rejecting":
            return
        self._release_taken(bins, inputs_to="lost" if bins.get("lost") else "available")
        self._sop(self._settlements, bins["sid"], [ops.write("sstate", "rejected")], _state_is("rejecting"))

    def settlement_attempted(self, settlement_id: str, detail: str) -> None:
        """A counter for the logs: a retried increment may count one attempt twice."""
        self._sop(self._settlements, settlement_id, [ops.increment("attempts", 1), ops.write("err", detail)])

    def task_settlement(self, customer_id: str, task_id: str) -> TaskSettlement | None:
        found = self._srecords.get(self._stasks, task_id)
        if found is None or found[0]["owner"] != customer_id or "sid" not in found[0]:
            return None
        task = found[0]
        settled = self._srecords.get(self._settlements, task["sid"])
        if settled is None or settled[0]["sstate"] not in ("prepared", "accepting", "accepted"):
            return None  # still being taken (or given back): not recorded yet
        s = settled[0]
        payouts = sorted((vout, worker, sats) for tid, worker, vout, sats in s["payouts"] if tid == task_id)
        return TaskSettlement(
            task_id,
            s["sid"],
            s["txid"],
            "prepared" if s["sstate"] == "prepared" else "accepted",
            task["cost"],
            tuple((worker, vout, sats) for vout, worker, sats in payouts),
        )
