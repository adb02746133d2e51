"""The areas implemented so far, over one client: what `store.open("aerospike://…")` will return."""

from __future__ import annotations

from asg_grpc.store.aerospike.connection import AerospikeUrl, connect
from asg_grpc.store.aerospike.customers import AerospikeCustomers
from asg_grpc.store.aerospike.tasks import AerospikeTasks


class AerospikeStore(AerospikeCustomers, AerospikeTasks):
    def __init__(self, url: AerospikeUrl, *, idempotency_ttl: int | None = None) -> None:
        client = connect(url)
        AerospikeCustomers.__init__(self, client, url)
        AerospikeTasks.__init__(self, client, url, ttl=idempotency_ttl)

    def close(self) -> None:
        self._records.client.close()
