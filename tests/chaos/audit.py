"""The invariants, read from the store (the SQLite file, read-only) and the public API once the
campaign has gone quiet. Each finding names what broke; the per-round counts feed the table."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bsv import P2PKH

from asg_grpc.settings import DEFAULT_GENESIS_SATS
from tests.chaos.load import Seen

ROUND = re.compile(r"/chaos/(\d+)/")
OPEN = ("pending", "in_progress", "verified")
ENDED = ("cancelled", "expired")


@dataclass
class Findings:
    lost: Counter[int] = field(default_factory=Counter)  # per round
    duplicated: Counter[int] = field(default_factory=Counter)
    stuck: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    totals: dict[str, object] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(message)


def round_of(data_url: str) -> int:
    match = ROUND.search(data_url)
    return int(match[1]) if match else -1


def open_work(db_path: Path) -> int:
    """Tasks not final yet: open, verified but unpaid, or ended with labels and no payout."""
    with _connect(db_path) as db:
        [(n,)] = db.execute(
            f"SELECT count(*) FROM tasks t WHERE status IN {OPEN} OR (status IN {ENDED}"
            " AND settlement_id IS NULL AND EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.task_id))"
        )
        [(hooks,)] = db.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'")
        [(unfanned,)] = db.execute("SELECT count(*) FROM events WHERE fanned_out = 0")
    return int(n) + int(hooks) + int(unfanned)


def _connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)


def audit(
    db_path: Path,
    seen: Seen,
    witness_id: str,
    witness_acked: dict[str, str],
    usage: dict[str, dict],
    hooked_customer: str,
    delivered_ids: set[str],
) -> Findings:
    found = Findings()
    db = _connect(db_path)
    try:
        _tasks(db, seen, found)
        _labels(db, witness_id, witness_acked, found)
        _payouts(db, found)
        _ledger(db, found)
        _billing(db, usage, found)
        _webhooks(db, hooked_customer, delivered_ids, found)
    finally:
        db.close()
    for conflict in seen.conflicts:
        found.fail(f"one submission acknowledged as two tasks: {conflict}")
    return found


def _tasks(db: sqlite3.Connection, seen: Seen, found: Findings) -> None:
    rows = db.execute(
        "SELECT task_id, data_url, status, settlement_id,"
        " EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.task_id) FROM tasks t"
    ).fetchall()
    by_id = {task_id: data_url for task_id, data_url, *_ in rows}
    for data_url, task_id in seen.acked.items():
        if by_id.get(task_id) != data_url:
            found.lost[round_of(data_url)] += 1
            found.fail(f"acknowledged task {task_id} ({data_url}) is not in the store")
    for data_url, n in Counter(data_url for _, data_url, *_ in rows).items():
        if n > 1:
            found.duplicated[round_of(data_url)] += n - 1
            found.fail(f"{data_url} stored {n} times")
    statuses: Counter[str] = Counter()
    for task_id, data_url, status, settlement_id, labeled in rows:
        statuses[status] += 1
        if status in OPEN or (status in ENDED and labeled and settlement_id is None):
            found.stuck[round_of(data_url)] += 1
            found.fail(f"task {task_id} stuck {status}" + (" with labels, unpaid" if status in ENDED else ""))
    found.totals["tasks"] = len(rows)
    found.totals["statuses"] = dict(sorted(statuses.items()))


def _labels(db: sqlite3.Connection, witness_id: str, witness_acked: dict[str, str], found: Findings) -> None:
    """Every label the core acked is stored once; decided tasks count exactly their labels."""
    stored = dict(db.execute("SELECT task_id, option FROM labels WHERE worker_id = ?", (witness_id,)))
    for task_id, option in witness_acked.items():
        if stored.get(task_id) != option:
            found.fail(
                f"label acked to the witness on {task_id} ({option}) is stored as {stored.get(task_id)}"
            )
    found.totals["witness labels acked"] = len(witness_acked)
    for task_id, status, worker_count, threshold, labels in db.execute(
        "SELECT t.task_id, t.status, t.worker_count, t.consensus_threshold,"
        " (SELECT count(*) FROM labels l WHERE l.task_id = t.task_id) FROM tasks t"
        " WHERE t.status IN ('verified', 'settled', 'failed')"
    ):
        if worker_count != labels or labels > 2 * threshold:
            found.fail(f"task {task_id} {status}: worker_count {worker_count}, {labels} labels stored")


def _payouts(db: sqlite3.Connection, found: Findings) -> None:
    """Settled once, by an accepted payout on the ledger; each worker to pay paid exactly once."""
    for task_id, status, state, txid, bsv_txid, on_ledger in db.execute(
        "SELECT t.task_id, t.status, s.state, s.txid, t.bsv_txid, lt.txid FROM tasks t"
        " JOIN settlements s ON s.settlement_id = t.settlement_id"
        " LEFT JOIN ledger_transactions lt ON lt.txid = s.txid"
    ):
        if status not in ("settled", *ENDED) or (state, bsv_txid, on_ledger) != ("accepted", txid, txid):
            found.fail(f"task {task_id} {status}: payout {txid} {state}, bsv_txid {bsv_txid}")
    [(prepared,)] = db.execute("SELECT count(*) FROM settlements WHERE state = 'prepared'")
    if prepared:
        found.fail(f"{prepared} payouts still prepared (recorded, never decided)")
    owed = set(
        db.execute(
            "SELECT l.task_id, l.worker_id FROM tasks t JOIN labels l ON l.task_id = t.task_id"
            " WHERE (t.status = 'settled' AND l.option = t.consensus_label)"
            f" OR (t.status IN {ENDED} AND t.settlement_id IS NOT NULL)"
        )
    )
    paid = Counter(db.execute("SELECT task_id, worker_id FROM payouts p"))
    for key, n in paid.items():
        if n != 1 or key not in owed:
            found.fail(f"payout {key} made {n} times, owed: {key in owed}")
    for key in owed - paid.keys():
        found.fail(f"worker {key[1]} never paid for task {key[0]}")
    found.totals["payouts"] = len(paid)


def _ledger(db: sqlite3.Connection, found: Findings) -> None:
    """The chain pays each address what the payouts say, and the wallet reconciles to the sat."""
    owed: Counter[bytes] = Counter()
    for address, sats in db.execute(
        "SELECT w.payout_address, p.sats FROM payouts p JOIN workers w ON w.worker_id = p.worker_id"
        " JOIN settlements s ON s.settlement_id = p.settlement_id WHERE s.state = 'accepted'"
    ):
        owed[P2PKH().lock(address).serialize()] += sats
    received: Counter[bytes] = Counter()
    for script, sats in db.execute(
        "SELECT o.locking_script, o.satoshis FROM ledger_outputs o"
        " JOIN ledger_transactions t ON t.txid = o.txid WHERE t.kind = 'tx'"
    ):
        received[bytes(script)] += sats
    [(wallet_script,)] = db.execute(
        "SELECT locking_script FROM ledger_outputs o JOIN ledger_transactions t ON t.txid = o.txid"
        " WHERE t.kind = 'genesis'"
    )
    received.pop(bytes(wallet_script), None)
    if received != owed:
        found.fail(
            f"the ledger paid {sum(received.values())} sats to workers, payouts say {sum(owed.values())}"
        )
    available = dict(
        ((txid, vout), sats)
        for txid, vout, sats in db.execute(
            "SELECT txid, vout, satoshis FROM wallet_utxos WHERE state = 'available'"
        )
    )
    unspent = dict(
        ((txid, vout), sats)
        for txid, vout, sats in db.execute(
            "SELECT txid, vout, satoshis FROM ledger_outputs WHERE spent_by IS NULL AND locking_script = ?",
            (wallet_script,),
        )
    )
    if available != unspent:
        found.fail("the wallet's available outputs are not the ledger's unspent ones")
    [(held,)] = db.execute("SELECT count(*) FROM wallet_utxos WHERE state NOT IN ('available', 'spent')")
    if held:
        found.fail(f"{held} wallet outputs left reserved, pending or lost")
    [(fees,)] = db.execute("SELECT coalesce(sum(fee), 0) FROM ledger_transactions WHERE kind = 'tx'")
    paid = sum(owed.values())
    if sum(available.values()) + paid + fees != DEFAULT_GENESIS_SATS:
        found.fail(
            f"genesis {DEFAULT_GENESIS_SATS} != wallet {sum(available.values())} + paid {paid} + fees {fees}"
        )
    found.totals["sats paid to workers"] = paid


def _billing(db: sqlite3.Connection, usage: dict[str, dict], found: Findings) -> None:
    """What each customer is billed (GET /v1/billing/usage) is what its payouts recorded."""
    costs: dict[str, int] = defaultdict(int)
    charged: Counter[str] = Counter()
    for customer_id, status, cost in db.execute(
        "SELECT customer_id, status, total_cost_sats FROM tasks WHERE settlement_id IS NOT NULL"
    ):
        costs[customer_id] += cost or 0
        charged[customer_id] += status == "settled"
    for customer_id, body in usage.items():
        if (body["sats_charged"], body["tasks_charged"]) != (costs[customer_id], charged[customer_id]):
            found.fail(
                f"{customer_id} billed {body['sats_charged']} sats for {body['tasks_charged']} tasks;"
                f" its payouts recorded {costs[customer_id]} sats for {charged[customer_id]}"
            )
    found.totals["sats billed"] = sum(body["sats_charged"] for body in usage.values())


def _webhooks(db: sqlite3.Connection, customer_id: str, delivered_ids: set[str], found: Findings) -> None:
    """Every event of the customer with a webhook was delivered (retried through the faults)."""
    states = Counter(
        state
        for (state,) in db.execute(
            "SELECT d.state FROM events e JOIN deliveries d ON d.event_id = e.event_id"
            " WHERE e.customer_id = ?",
            (customer_id,),
        )
    )
    [(events,)] = db.execute("SELECT count(*) FROM events WHERE customer_id = ?", (customer_id,))
    [(undelivered,)] = db.execute(
        "SELECT count(*) FROM events e WHERE e.customer_id = ? AND NOT EXISTS"
        " (SELECT 1 FROM deliveries d WHERE d.event_id = e.event_id AND d.state = 'delivered')",
        (customer_id,),
    )
    if undelivered:
        found.fail(f"{undelivered} of {events} webhook events never delivered: {dict(states)}")
    for (delivery_id,) in db.execute(
        "SELECT d.delivery_id FROM deliveries d JOIN events e ON e.event_id = d.event_id"
        " WHERE e.customer_id = ? AND d.state = 'delivered'",
        (customer_id,),
    ):
        if delivery_id not in delivered_ids:
            found.fail(f"delivery {delivery_id} recorded delivered, the receiver never answered it 200")
            break
    found.totals["webhook events"] = events


def fetch_usage(base_url: str, keys: dict[str, str]) -> dict[str, dict]:
    """customer_id → this month's usage, through the API."""
    usage = {}
    for customer_id, key in keys.items():
        reply = httpx.get(
            f"{base_url}/v1/billing/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        reply.raise_for_status()
        usage[customer_id] = reply.json()
    return usage
