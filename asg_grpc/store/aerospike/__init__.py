"""The Aerospike backend (issue 12): a shared store several core processes can serve from.

Groundwork: the connection, the retry wrapper, customers and keys, task submission with
idempotency and a customer's tasks. The record
layout and the invariant each step keeps are in docs/storage-aerospike.md.
"""

from asg_grpc.store.aerospike.connection import AerospikeUrl, connect, parse_url
from asg_grpc.store.aerospike.customers import AerospikeCustomers
from asg_grpc.store.aerospike.store import AerospikeStore
from asg_grpc.store.aerospike.tasks import AerospikeTasks

__all__ = ["AerospikeCustomers", "AerospikeStore", "AerospikeTasks", "AerospikeUrl", "connect", "parse_url"]
