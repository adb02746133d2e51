"""Settlement throughput on the local ledger: tasks settled per second, chain bytes and fee per
settled task, bytes per transaction output; batched payouts against one transaction per task.

In one process, over a real store (SQLite in a temporary dir, or the one `--store` names: an
`aerospike://` URL with an empty set prefix, the local ledger then in a SQLite file beside it,
as on a core): registers `--workers` workers
(each its own payout address), makes `--tasks` verified tasks through the store's own API
(3 labels each, 2 agreeing, workers taken round-robin), funds the platform wallet from the
ledger's genesis, then runs the real settler (`asg_grpc.settlement.settler.Settler`, batches of
`--batch`) against the real local ledger (bsv-sdk signing; the ledger's script, UTXO and fee
checks) until every task is settled, and times that. Then the same with one task per
transaction (`--single` tasks). Mining is not in the figure (a block is cut after each phase, untimed).

Prints one JSON object on stdout; progress on stderr.

The chain figures (bytes, fees, outputs) are read from the SQLite store's own tables, so they
are given for SQLite only: the transactions are the same on both backends (the same settler).

    .venv/bin/python bench/settle.py [--tasks 50000] [--workers 1000] [--batch 1000] [--single 2000]
        [--store URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.core.settlement.verified

from asg_grpc.domain.tiers import default_tiers
from asg_grpc.ledger.ledger import Ledger
from asg_grpc.ledger.wallet import load_wallet
from asg_grpc.settlement.broadcast import LocalBroadcaster
from asg_grpc.settlement.settler import Settler, SettlerSettings
from asg_grpc.store import Store
from asg_grpc.store.open import StoreOptions, open_store, sqlite_url
from asg_grpc.store.settlement_records import WalletUtxo
from asg_grpc.store.sqlite import SQLiteStore
from tests.core.settlement.verified import make_customer, make_workers, verified_tasks

TARGET = 2000.0  # tasks settled per second
OUTPUT_BYTES_TARGET = 40.0  # average bytes per transaction output at full batches
FEE_PER_KB = 100
GENESIS = 10**15


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def settle_all(store: Store, settler: Settler) -> float:
    started = time.perf_counter()
    while store.settleable_tasks(1) or store.open_settlements():
        await settler.step()
    return time.perf_counter() - started


def chain_figures(store: SQLiteStore, since: float) -> dict[str, float]:
    """Bytes, fees and outputs of the payout transactions recorded after `since`."""
    [(txs, size, fees, outputs, tasks)] = store._db.execute(
        "SELECT count(*), sum(length(raw)), sum(fee), sum(output_count), sum(task_count) FROM settlements"
        " WHERE state = 'accepted' AND created_at >= ?",
        (since,),
    )
    # output_count counts payouts (a worker's label per task); the transaction's outputs are
    # the distinct addresses plus change: read them from the ledger.
    [(tx_outputs,)] = store._db.execute(
        "SELECT count(*) FROM ledger_outputs o JOIN settlements s ON s.txid = o.txid"
        " WHERE s.state = 'accepted' AND s.created_at >= ?",
        (since,),
    )
    return {
        "transactions": txs,
        "tasks": tasks,
        "payouts": outputs,
        "tx_outputs": tx_outputs,
        "chain_bytes": size,
        "chain_bytes_per_task": round(size / tasks, 2),
        "fee_sats_per_task": round(fees / tasks, 3),
        "bytes_per_output": round(size / tx_outputs, 2),
    }


def run(store: Store, wallet_path: Path, args: argparse.Namespace) -> dict[str, object]:
    now = time.time()
    wallet = load_wallet(None, wallet_path)
    ledger = Ledger(store, wallet, fee_per_kb=FEE_PER_KB)
    genesis = ledger.ensure_genesis(GENESIS, now)
    store.add_wallet_utxos([WalletUtxo(genesis, 0, GENESIS)])
    workers = make_workers(store, args.workers, now)  # type: ignore[arg-type]
    customer = make_customer(store, 10**12, now)  # type: ignore[arg-type]
    tiers = default_tiers()
    phases: dict[str, object] = {}
    for name, count, batch in (("batched", args.tasks, args.batch), ("one_per_tx", args.single, 1)):
        progress(f"{name}: making {count} verified tasks")
        verified_tasks(store, customer, workers, count)  # type: ignore[arg-type]
        settler = Settler(
            store,
            wallet,
            LocalBroadcaster(ledger),
            SettlerSettings(batch, 0.0, FEE_PER_KB),
            tiers,
        )
        since = time.time()
        progress(f"{name}: settling in transactions of up to {batch} tasks")
        cpu = time.process_time()
        seconds = uvloop.run(settle_all(store, settler))
        cpu = time.process_time() - cpu
        figures = chain_figures(store, since) if isinstance(store, SQLiteStore) else {}
        figures["seconds"] = round(seconds, 3)
        figures["tasks_per_second"] = round(count / seconds, 1)
        # CPU of this process while settling: what a busy machine moves far less than the rate.
        figures["cpu_us_per_task"] = round(cpu / count * 1e6, 1)
        phases[name] = figures
        ledger.mine(time.time())
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=2000, help="tasks paid one per transaction")
    parser.add_argument("--store", metavar="URL", help="default: SQLite in a temporary dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asg-bench-settle-") as tmp:
        url = args.store or sqlite_url(Path(tmp) / "asg.sqlite3")
        store = open_store(url, StoreOptions(ledger_path=Path(tmp) / "ledger.sqlite3"))
        try:
            phases = run(store, Path(tmp) / "wallet.wif", args)
        finally:
            store.close()
    batched = phases["batched"]
    assert isinstance(batched, dict)
    print(
        json.dumps(
            {
                "bench": "settle",
                "store": url.partition(":")[0],
                "workers": args.workers,
                "batch": args.batch,
                "fee_sats_per_kb": FEE_PER_KB,
                **phases,
                "target_tasks_per_second": TARGET,
                "target_bytes_per_output": OUTPUT_BYTES_TARGET,
                "meets_target": batched["tasks_per_second"] >= TARGET
                and batched.get("bytes_per_output", 0) <= OUTPUT_BYTES_TARGET,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
