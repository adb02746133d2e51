"""The settlement tables of the SQLite store: the platform wallet's UTXOs, payout transactions,
and which worker each paid for which task.

Every state
change is one transaction, and the intent (the signed transaction with what it pays and
spends) is written before anything is broadcast: after a crash the same bytes are broadcast
again, never a second transaction for the same tasks.

Wallet UTXO states: `available` (spendable), `reserved` (an input of a recorded settlement not
yet accepted), `spent`, `pending` (the change of a recorded settlement: available once it is
accepted), `lost` (a network said it was spent elsewhere).
"""

from __future__ import annotations

from asg_grpc.domain.errors import Conflict
from asg_grpc.domain.settlement import AgreeingLabel, SettleableTask, WorkerPayment
from asg_grpc.store.settlement_records import (
    OpenSettlement,
    SettlementIntent,
    TaskSettlement,
    WalletUtxo,
)
from asg_grpc.store.sqlite import dashboard as sqlite_dashboard
from asg_grpc.store.sqlite.area import Area, chunks
from asg_grpc.store.sqlite.webhooks import record_task_events

# Tasks waiting to be paid; word for word the condition of index tasks_to_pay, so it is used.
_SETTLEABLE = (
    "t.settlement_id IS NULL AND (t.status = 'verified'"
    " OR (t.status IN ('cancelled', 'expired') AND t.worker_count > 0))"
)


class SQLiteSettlement(Area):
    """The settlement outbox: the platform wallet, payouts recorded before broadcast."""

    # the wallet --------------------------------------------------------------------------------

    def add_wallet_utxos(self, utxos: list[WalletUtxo]) -> int:
        """Outputs the wallet was funded with (genesis, or found on chain); known ones are kept
        as they are. Returns how many were new."""
        with self._conn.write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO wallet_utxos (txid, vout, satoshis, state)"
                " VALUES (?, ?, ?, 'available')",
                [(u.txid, u.vout, u.satoshis) for u in utxos],
            )
            return db.total_changes - before

    def wallet_utxos(self, limit: int) -> list[WalletUtxo]:
        """Spendable outputs, largest first."""
        rows = self._db.execute(
            "SELECT txid, vout, satoshis FROM wallet_utxos WHERE state = 'available'"
            " ORDER BY satoshis DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [WalletUtxo(*r) for r in rows]

    def wallet_utxo_satoshis(self, txid: str, vout: int) -> int | None:
        """The amount of a wallet output in any state (a recorded payout spends reserved ones)."""
        row = self._db.execute(
            "SELECT satoshis FROM wallet_utxos WHERE txid = ? AND vout = ?", (txid, vout)
        ).fetchone()
        return None if row is None else row[0]

    def wallet_balance(self) -> dict[str, int]:
        """Satoshis by UTXO state."""
        return dict(
            self._db.execute("SELECT state, sum(satoshis) FROM wallet_utxos GROUP BY state").fetchall()
        )

    # settling --------------------------------------------------------------------------------

    def settleable_tasks(self, limit: int) -> list[SettleableTask]:
        """Tasks to pay in no payout yet, oldest first, with the workers to pay: the verified
        ones and their agreeing workers; the cancelled and expired ones with labels, and every
        worker who labeled them."""
        rows = self._db.execute(
            # A task from before tiers were recorded is priced at its customer's tier, as billing
            # prices it.
            "SELECT t.task_id, t.customer_id, coalesce(t.tier, c.tier), t.worker_count, t.consensus_label,"
            " t.status != 'verified' FROM tasks t JOIN customers c ON c.customer_id = t.customer_id"
            f" WHERE {_SETTLEABLE} ORDER BY t.seq LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return []
        agreeing: dict[str, list[AgreeingLabel]] = {r[0]: [] for r in rows}
        label_of = {r[0]: r[4] for r in rows}
        ended = {r[0] for r in rows if r[5]}
        for chunk in chunks(list(agreeing)):
            marks = ",".join("?" * len(chunk))
            for task_id, worker_id, option, address in self._db.execute(
                "SELECT l.task_id, l.worker_id, l.option, w.payout_address FROM labels l"
                f" JOIN workers w ON w.worker_id = l.worker_id WHERE l.task_id IN ({marks})"
                " ORDER BY l.task_id, l.created_at",
                chunk,
            ):
                if option == label_of[task_id] or task_id in ended:
                    agreeing[task_id].append(AgreeingLabel(worker_id, address))
        return [SettleableTask(r[0], r[1], r[2], r[3], tuple(agreeing[r[0]]), ended=bool(r[5])) for r in rows]

    def record_settlement(self, intent: SettlementIntent, now: float) -> None:
        """The intent, all or nothing: Conflict (nothing written) when a task is no longer
        settleable or an input no longer available."""
        sid = intent.settlement_id
        with self._conn.write() as db:
            # The same tasks and inputs sign to the same transaction: after a rejection, trying
            # again records it anew (the rejection stays in last_error and the logs).
            earlier = db.execute(
                "DELETE FROM settlements WHERE txid = ? AND state = 'rejected' RETURNING last_error",
                (intent.txid,),
            ).fetchone()
            db.execute(
                "INSERT INTO settlements (settlement_id, txid, raw, state, task_count, output_count, fee,"
                " created_at, last_error) VALUES (?, ?, ?, 'prepared', ?, ?, ?, ?, ?)",
                (
                    sid,
                    intent.txid,
                    intent.raw,
                    len(intent.task_ids),
                    len(intent.payouts),
                    intent.fee,
                    now,
                    None if earlier is None else f"rejected before: {earlier[0]}",
                ),
            )
            before = db.total_changes
            db.executemany(
                "UPDATE tasks AS t SET settlement_id = ?, total_cost_sats = ?"
                f" WHERE task_id = ? AND {_SETTLEABLE}",
                [(sid, intent.cost_by_task[task_id], task_id) for task_id in intent.task_ids],
            )
            taken = db.total_changes - before
            if taken != len(intent.task_ids):
                raise Conflict("a task of the payout is no longer waiting for one")
            reserved = 0
            for utxo in intent.inputs:
                reserved += db.execute(
                    "UPDATE wallet_utxos SET state = 'reserved', settlement_id = ?"
                    " WHERE txid = ? AND vout = ? AND state = 'available'",
                    (sid, utxo.txid, utxo.vout),
                ).rowcount
            if reserved != len(intent.inputs):
                raise Conflict("an input of the payout is no longer available")
            db.executemany(
                "INSERT INTO payouts (task_id, worker_id, settlement_id, vout, sats) VALUES (?, ?, ?, ?, ?)",
                [(p.task_id, p.worker_id, sid, vout, p.sats) for p, vout in intent.payouts],
            )
            if intent.change is not None:
                c = intent.change
                db.execute(
                    "INSERT INTO wallet_utxos (txid, vout, satoshis, state, settlement_id)"
                    " VALUES (?, ?, ?, 'pending', ?)",
                    (c.txid, c.vout, c.satoshis, sid),
                )

    def open_settlements(self) -> list[OpenSettlement]:
        rows = self._db.execute(
            "SELECT settlement_id, txid, raw, attempts FROM settlements WHERE state = 'prepared'"
            " ORDER BY created_at"
        ).fetchall()
        return [OpenSettlement(*r) for r in rows]

    def settlement_accepted(self, settlement_id: str, now: float) -> list[WorkerPayment]:
        """The network has the transaction: its tasks are settled (with their task.settled
        events), its inputs spent, its change spendable. What each worker got, for the
        payment messages; [] when it was recorded accepted already."""
        with self._conn.write() as db:
            row = db.execute(
                "SELECT txid FROM settlements WHERE settlement_id = ? AND state = 'prepared'",
                (settlement_id,),
            ).fetchone()
            if row is None:
                return []
            txid = row[0]
            db.execute(
                "UPDATE settlements SET state = 'accepted', decided_at = ? WHERE settlement_id = ?",
                (now, settlement_id),
            )
            task_ids = [
                r[0]
                for r in db.execute(
                    "SELECT task_id FROM tasks WHERE settlement_id = ? AND status = 'verified'",
                    (settlement_id,),
                )
            ]
            # Cancelled and expired tasks keep their status; their settlement shows the payout.
            with sqlite_dashboard.counted(db, task_ids):
                db.execute(
                    "UPDATE tasks SET status = CASE status WHEN 'verified' THEN 'settled' ELSE status END,"
                    " bsv_txid = ?, settled_at = ?, updated_at = ? WHERE settlement_id = ?",
                    (txid, now, now, settlement_id),
                )
            record_task_events(db, task_ids, "task.settled", now)
            db.execute(
                "UPDATE wallet_utxos SET state = 'spent' WHERE settlement_id = ? AND state = 'reserved'",
                (settlement_id,),
            )
            db.execute(
                "UPDATE wallet_utxos SET state = 'available' WHERE settlement_id = ? AND state = 'pending'",
                (settlement_id,),
            )
            paid: dict[tuple[str, int], tuple[int, list[str]]] = {}
            for task_id, worker_id, vout, sats in db.execute(
                "SELECT task_id, worker_id, vout, sats FROM payouts WHERE settlement_id = ? ORDER BY task_id",
                (settlement_id,),
            ):
                total, tasks = paid.get((worker_id, vout), (0, []))
                tasks.append(task_id)
                paid[(worker_id, vout)] = (total + sats, tasks)
        return [
            WorkerPayment(worker_id, txid, vout, sats, tuple(tasks), now)
            for (worker_id, vout), (sats, tasks) in paid.items()
        ]

    def settlement_rejected(self, settlement_id: str, detail: str, inputs_spent: bool, now: float) -> None:
        """The network refused the transaction for good: its tasks wait for another payout,
        its inputs are spendable again (or lost, when spent elsewhere), its change never was."""
        with self._conn.write() as db:
            changed = db.execute(
                "UPDATE settlements SET state = 'rejected', decided_at = ?, last_error = ?"
                " WHERE settlement_id = ? AND state = 'prepared'",
                (now, detail, settlement_id),
            ).rowcount
            if not changed:
                return
            db.execute(
                "UPDATE tasks SET settlement_id = NULL, total_cost_sats = NULL WHERE settlement_id = ?",
                (settlement_id,),
            )
            db.execute("DELETE FROM payouts WHERE settlement_id = ?", (settlement_id,))
            db.execute(
                "DELETE FROM wallet_utxos WHERE settlement_id = ? AND state = 'pending'", (settlement_id,)
            )
            db.execute(
                "UPDATE wallet_utxos SET state = ?, settlement_id = NULL"
                " WHERE settlement_id = ? AND state = 'reserved'",
                ("lost" if inputs_spent else "available", settlement_id),
            )

    def settlement_attempted(self, settlement_id: str, detail: str) -> None:
        """A broadcast that may have to be repeated (the network did not answer for sure)."""
        with self._conn.write() as db:
            db.execute(
                "UPDATE settlements SET attempts = attempts + 1, last_error = ? WHERE settlement_id = ?",
                (detail, settlement_id),
            )

    def task_settlement(self, customer_id: str, task_id: str) -> TaskSettlement | None:
        row = self._db.execute(
            "SELECT s.settlement_id, s.txid, s.state, t.total_cost_sats FROM tasks t"
            " JOIN settlements s ON s.settlement_id = t.settlement_id"
            " WHERE t.task_id = ? AND t.customer_id = ?",
            (task_id, customer_id),
        ).fetchone()
        if row is None:
            return None
        payouts = self._db.execute(
            "SELECT worker_id, vout, sats FROM payouts WHERE task_id = ? ORDER BY vout, worker_id", (task_id,)
        ).fetchall()
        return TaskSettlement(task_id, row[0], row[1], row[2], row[3], tuple(tuple(p) for p in payouts))
