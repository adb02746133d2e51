"""The counters contract again with each customer's counters spread over 3 shard records
(`count_shards=3` in the Aerospike URL; the default is 16): every write path still keeps the
counters equal to a recount, and the usage counts billing reads still add up
(asg_grpc/store/aerospike/counters.py). SQLite has no shards; it runs the same tests in
test_counters.py and test_billing.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from asg_grpc.store import Submission
from asg_grpc.store.aerospike.connection import AerospikeUrl, connect
from tests.store.contract.conftest import openers
from tests.store.contract.test_billing import *  # noqa: F403 - the same tests, on shards
from tests.store.contract.test_counters import *  # noqa: F403
from tests.store.contract.test_customers import register
from tests.store.contract.test_tasks import spec

SHARDS = 3


@pytest.fixture
def open_store(fresh_aerospike_url: AerospikeUrl) -> Iterator[Callable[..., Any]]:
    opener, close_all = openers(replace(fresh_aerospike_url, count_shards=SHARDS))
    yield opener
    close_all()


def test_a_customers_counters_spread_over_the_shard_records(
    open_store: Callable[..., Any], fresh_aerospike_url: AerospikeUrl
) -> None:
    store = open_store()
    customer_id = register(store)
    for n in range(30):
        store.submit([Submission(customer_id, [spec(n)], None)], time.time())
    client = connect(fresh_aerospike_url)
    try:
        ns, counts = fresh_aerospike_url.namespace, fresh_aerospike_url.set_prefix + "counts"
        keys = [customer_id, *(f"{customer_id}/{n}" for n in range(1, SHARDS))]
        found = [client.get((ns, counts, key))[2] for key in keys]
    finally:
        client.close()
    # Every shard holds some of the 30 tasks (all in two of the 3: odds 1e-5), and their sum
    # is what the dashboard reads.
    pending = [int((bins.get("c") or {}).get("st|pending", 0)) for bins in found]
    assert all(pending), pending
    counters = store.dashboard_counters(customer_id, "2000-01-01")
    assert sum(pending) == 30 == counters.by_status["pending"]
