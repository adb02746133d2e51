"""The Aerospike backend (issue 12): a shared store several core processes can serve from.

Groundwork: the connection, the retry wrapper and the customers-and-keys area. The record
layout and the invariant each step keeps are in docs/storage-aerospike.md.
"""

from asg_grpc.store.aerospike.connection import AerospikeUrl, connect, parse_url
from asg_grpc.store.aerospike.customers import AerospikeCustomers

__all__ = ["AerospikeCustomers", "AerospikeUrl", "connect", "parse_url"]
