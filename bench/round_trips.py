"""Store round trips per operation on Aerospike: counted at the client, timed on the store.

Opens `AerospikeStore` on `--store` (a fresh set prefix is added, so runs never see each
other's records) with its client wrapped in a counter of calls that reach the node (get, put,
operate, select, remove, batch_*, query), then runs, each straight on the store (no gRPC, no
gateway):

* `key_owner`: the API-key lookup every customer call makes (the first call on a core, then
  every later one);
* `submit, 1 task`: one single submission alone in its group commit;
* `submit, 64 × 1 task in one group`: what the core's group commit hands the store when 64
  connections submit at once (`bench/submit.py`'s single phase);
* `submit, 1000-task batch`;
* `settle N tasks`: `record_settlement` then `settlement_accepted` of one payout of `--settle`
  verified tasks (the settler's two store steps; no ledger, no signing).

Prints one JSON object: per operation the round trips (total, and by client call), and the
wall time on the store (best of `--repeat`).

    .venv/bin/python bench/round_trips.py [--store aerospike://127.0.0.1:3000/asg] [--settle 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.core.settlement.verified

from asg_grpc.domain.tasks import TaskSpec
from asg_grpc.store.aerospike import store as aerospike_store
from asg_grpc.store.aerospike.connection import parse_url
from asg_grpc.store.settlement_records import SettlementIntent, WalletUtxo
from asg_grpc.store.task_records import Submission
from tests.core.settlement.verified import make_customer, make_workers, verified_tasks

# Client calls that are one request to the node each (a query: one per `results`).
_CALLS = frozenset(
    {
        "get",
        "select",
        "put",
        "operate",
        "remove",
        "exists",
        "batch_read",
        "batch_write",
        "batch_operate",
        "batch_remove",
        "apply",
        "info_random_node",
        "info_all",
    }
)


class _CountingQuery:
    def __init__(self, query: Any, calls: Counter[str]) -> None:
        self._query, self._calls = query, calls

    def results(self, *args: Any, **kwargs: Any) -> Any:
        self._calls["query"] += 1
        return self._query.results(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._query, name)


class CountingClient:
    """The aerospike client, counting the calls that are a round trip to the node."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def query(self, *args: Any) -> _CountingQuery:
        return _CountingQuery(self._client.query(*args), self.calls)

    def scan(self, *args: Any) -> _CountingQuery:
        return _CountingQuery(self._client.scan(*args), self.calls)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in _CALLS:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def measure(client: CountingClient, repeat: int, run: Callable[[], object]) -> dict[str, object]:
    """Round trips of one run (the first) and the best wall time of `repeat` runs."""
    best = float("inf")
    calls: Counter[str] = Counter()
    for attempt in range(repeat):
        client.calls.clear()
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
        if attempt == 0:
            calls = Counter(client.calls)
    return {
        "round_trips": sum(calls.values()),
        "by_call": dict(sorted(calls.items())),
        "ms": round(best * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="aerospike://127.0.0.1:3000/asg", metavar="URL")
    parser.add_argument("--settle", type=int, default=1000, help="tasks in the measured payout")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    prefix = f"rt{time.time_ns() % 10**12}_"
    url = parse_url(args.store + ("&" if "?" in args.store else "?") + f"set_prefix={prefix}")
    counting: list[CountingClient] = []
    connect = aerospike_store.connect

    def counted_connect(u: Any) -> CountingClient:
        counting.append(CountingClient(connect(u)))
        return counting[0]

    aerospike_store.connect = counted_connect  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="asg-round-trips-") as tmp:
        store = aerospike_store.AerospikeStore(url, ledger_path=Path(tmp) / "ledger.sqlite3")
        client = counting[0]
        now = time.time()
        customer = make_customer(store, 10**12, now)  # type: ignore[arg-type]
        found = store._records.get(url.set_prefix + "customers", customer)
        assert found is not None
        [key_hash] = found[0]["keys"]
        spec = TaskSpec(
            "image_classification", "https://cdn.example.com/x.jpg", "Animal?", ("cat", "dog"), 3, None, None
        )

        def submit(group: list[Submission]) -> None:
            for outcome in store.submit(group, time.time()):
                assert not isinstance(outcome, Exception), outcome

        one = Submission(customer, [spec], batch_id=None)
        out: dict[str, object] = {
            "key_owner, first call on a core": measure(client, 1, lambda: store.key_owner(key_hash)),
            "key_owner": measure(client, args.repeat, lambda: store.key_owner(key_hash)),
            "submit, 1 task": measure(client, args.repeat, lambda: submit([one])),
            "submit, 64 × 1 task in one group": measure(client, args.repeat, lambda: submit([one] * 64)),
            "submit, 1000-task batch": measure(
                client, args.repeat, lambda: submit([Submission(customer, [spec] * 1000, batch_id="b")])
            ),
        }
        workers = make_workers(store, 100, now)  # type: ignore[arg-type]
        store.add_wallet_utxos([WalletUtxo("aa" * 32, 0, 10**15)])
        settle_calls: Counter[str] = Counter()
        times: list[float] = []
        for attempt in range(max(1, args.repeat // 2)):
            tasks = verified_tasks(store, customer, workers, args.settle)  # type: ignore[arg-type]
            intent = SettlementIntent(
                f"stl_rt{attempt}_{prefix}",
                f"{attempt:02x}" * 32,
                b"raw",
                100,
                tasks,
                dict.fromkeys(tasks, 10),
                [],
                [WalletUtxo("aa" * 32, 0, 10**15)] if attempt == 0 else [],
                None,
            )
            client.calls.clear()
            started = time.perf_counter()
            store.record_settlement(intent, time.time())
            store.settlement_accepted(intent.settlement_id, time.time())
            times.append(time.perf_counter() - started)
            if attempt == 0:
                settle_calls = Counter(client.calls)
        out[f"settle {args.settle} tasks (record + accepted)"] = {
            "round_trips": sum(settle_calls.values()),
            "by_call": dict(sorted(settle_calls.items())),
            "ms": round(min(times) * 1e3, 2),
        }
        store.close()
    print(json.dumps({"bench": "round_trips", "store": "aerospike", **out}, indent=1))


if __name__ == "__main__":
    main()
