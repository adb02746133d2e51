"""Settlement survives SIGKILL: the core is killed at random moments while tasks are being
labeled and paid, 20 times, and restarted each time. Afterwards every verified task is settled
exactly once, each agreeing worker received exactly what its labels earned (summed from the
ledger's outputs), the ledger holds no double spend, and the wallet reconciles to the sat."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from bsv import P2PKH

from asg_grpc.devstack import Stack
from asg_grpc.settings import DEFAULT_GENESIS_SATS
from tests.conftest import make_stack, register

KILLS = 20
TASKS_PER_ROUND = 40
LABEL_PRICE = 300  # the sandbox tier's (docs/billing.md)


def submit_round(http: httpx.Client, round_no: int) -> None:
    tasks = [
        {
            "type": "image_classification",
            "data_url": f"https://cdn.example.com/crash/{round_no}/{i}.jpg",
            "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
            "consensus_threshold": 3,
        }
        for i in range(TASKS_PER_ROUND)
    ]
    reply = http.post("/v1/tasks/batch", json={"tasks": tasks})
    assert reply.status_code == 202, reply.text


def wait_until_all_final(db_path: Path, timeout: float) -> None:
    """No task pending, in progress or verified-but-unpaid."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db_path) as db:
            [(open_tasks,)] = db.execute(
                "SELECT count(*) FROM tasks WHERE status IN ('pending', 'in_progress', 'verified')"
            )
        if open_tasks == 0:
            return
        assert time.monotonic() < deadline, f"{open_tasks} tasks still not final"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigkill_during_settlement_twenty_times_pays_each_label_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    with make_stack(
        tmp_path,
        ASG_SANDBOX_LABEL_QUOTA="10000000",
        ASG_BLOCK_INTERVAL="0.3",
        ASG_SETTLE_BATCH="25",  # many small payouts: more of them in flight at each kill
        ASG_SETTLE_WINDOW="0.05",
    ) as stack:
        stack.start_workers(4)
        key = register(stack.base_url)["api_key"]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        ) as http:
            for round_no in range(KILLS):
                submit_round(http, round_no)
                time.sleep(rng.uniform(0.2, 1.2))
                stack.kill("core")
                stack.start_core()
                stack.wait_ready()
            submit_round(http, KILLS)
            wait_until_all_final(stack.data_dir / "asg.sqlite3", timeout=120)
        check_books(stack)


def check_books(stack: Stack) -> None:
    db = sqlite3.connect(stack.data_dir / "asg.sqlite3")
    try:
        [(tasks,)] = db.execute("SELECT count(*) FROM tasks")
        assert tasks == TASKS_PER_ROUND * (KILLS + 1)
        [(settled,)] = db.execute("SELECT count(*) FROM tasks WHERE status = 'settled'")
        assert settled > 0.9 * tasks, "most tasks reach a consensus with simulated workers"

        # Settled exactly once: by one accepted settlement whose transaction the ledger holds.
        rows = db.execute(
            "SELECT t.task_id, s.state, s.txid, t.bsv_txid, lt.txid FROM tasks t"
            " JOIN settlements s ON s.settlement_id = t.settlement_id"
            " LEFT JOIN ledger_transactions lt ON lt.txid = s.txid WHERE t.status = 'settled'"
        ).fetchall()
        assert len(rows) == settled
        for task_id, state, txid, bsv_txid, on_ledger in rows:
            assert (state, bsv_txid, on_ledger) == ("accepted", txid, txid), task_id
        [(unsettled_with_payout,)] = db.execute(
            "SELECT count(*) FROM tasks WHERE status != 'settled' AND settlement_id IS NOT NULL"
        )
        assert unsettled_with_payout == 0
        [(open_payouts,)] = db.execute("SELECT count(*) FROM settlements WHERE state = 'prepared'")
        assert open_payouts == 0

        # Each agreeing worker got exactly LABEL_PRICE per settled task it agreed on, counted
        # from what the ledger's outputs pay its address (all payouts, whatever the batching).
        earned: Counter[bytes] = Counter()
        for (address,) in db.execute(
            "SELECT w.payout_address FROM tasks t JOIN labels l ON l.task_id = t.task_id"
            " JOIN workers w ON w.worker_id = l.worker_id"
            " WHERE t.status = 'settled' AND l.option = t.consensus_label"
        ):
            earned[P2PKH().lock(address).serialize()] += LABEL_PRICE
        received: Counter[bytes] = Counter()
        for script, sats in db.execute(
            "SELECT o.locking_script, o.satoshis FROM ledger_outputs o"
            " JOIN ledger_transactions t ON t.txid = o.txid WHERE t.kind = 'tx'"
        ):
            received[bytes(script)] += sats
        wallet_script = db.execute(
            "SELECT locking_script FROM ledger_outputs o JOIN ledger_transactions t ON t.txid = o.txid"
            " WHERE t.kind = 'genesis'"
        ).fetchone()[0]
        change = received.pop(bytes(wallet_script), 0)
        assert received == earned

        # No double spend: every spent output names one spender that the ledger holds, and the
        # wallet's view of its outputs is the ledger's.
        [(dangling,)] = db.execute(
            "SELECT count(*) FROM ledger_outputs o LEFT JOIN ledger_transactions t ON t.txid = o.spent_by"
            " WHERE o.spent_by IS NOT NULL AND t.txid IS NULL"
        )
        assert dangling == 0
        unspent_on_ledger = {
            (txid, vout): sats
            for txid, vout, sats in db.execute(
                "SELECT txid, vout, satoshis FROM ledger_outputs"
                " WHERE spent_by IS NULL AND locking_script = ?",
                (wallet_script,),
            )
        }
        available = {
            (txid, vout): sats
            for txid, vout, sats in db.execute(
                "SELECT txid, vout, satoshis FROM wallet_utxos WHERE state = 'available'"
            )
        }
        assert available == unspent_on_ledger
        [(lost_or_held,)] = db.execute(
            "SELECT count(*) FROM wallet_utxos WHERE state != 'available' AND state != 'spent'"
        )
        assert lost_or_held == 0

        # To the sat: genesis = what the wallet holds + what workers got + fees.
        [(fees,)] = db.execute("SELECT coalesce(sum(fee), 0) FROM ledger_transactions WHERE kind = 'tx'")
        paid = sum(earned.values())
        assert sum(available.values()) + paid + fees == DEFAULT_GENESIS_SATS
        assert change > 0
    finally:
        db.close()
