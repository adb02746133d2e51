"""The areas implemented so far, over one client: what `store.open("aerospike://…")` will return."""

from __future__ import annotations

from pathlib import Path

from asg_grpc.store.aerospike.connection import AerospikeUrl, check_namespace, connect
from asg_grpc.store.aerospike.customers import AerospikeCustomers
from asg_grpc.store.aerospike.dashboard import AerospikeDashboard
from asg_grpc.store.aerospike.jobs import AerospikeJobs
from asg_grpc.store.aerospike.labels import AerospikeLabels
from asg_grpc.store.aerospike.leases import AerospikeDispatch
from asg_grpc.store.aerospike.ledger import SharedLedger
from asg_grpc.store.aerospike.settlement import AerospikeSettlement
from asg_grpc.store.aerospike.tasks import IDEMPOTENCY_TTL, AerospikeTasks
from asg_grpc.store.aerospike.webhooks import AerospikeWebhooks
from asg_grpc.store.offload import StoreThreads


class AerospikeStore(
    AerospikeCustomers,
    AerospikeTasks,
    AerospikeLabels,
    AerospikeDispatch,
    AerospikeSettlement,
    AerospikeWebhooks,
    AerospikeDashboard,
    AerospikeJobs,
    SharedLedger,
):
    def __init__(
        self,
        url: AerospikeUrl,
        *,
        idempotency_ttl: int = IDEMPOTENCY_TTL,
        ledger_path: Path = Path("var/ledger.sqlite3"),
        busy_timeout: float = 5.0,
    ) -> None:
        client = connect(url)
        try:
            check_namespace(client, url.namespace)
        except BaseException:
            client.close()
            raise
        AerospikeCustomers.__init__(self, client, url)
        AerospikeTasks.__init__(self, client, url, ttl=idempotency_ttl)
        AerospikeLabels.__init__(self, client, url)
        AerospikeDispatch.__init__(self, client, url)
        AerospikeSettlement.__init__(self, client, url)
        AerospikeWebhooks.__init__(self, client, url)
        AerospikeDashboard.__init__(self, client, url)
        AerospikeJobs.__init__(self, client, url, tasks=self)
        SharedLedger.__init__(self, ledger_path, busy_timeout=busy_timeout)
        # The threads the core's loop hands its Aerospike calls to (asg_grpc/store/offload.py);
        # the ledger's SQLite methods stay on the caller's thread.
        self.offload = StoreThreads()

    def close(self) -> None:
        self.offload.close()  # the calls running finish first
        self._records.client.close()
        self.close_ledger()
