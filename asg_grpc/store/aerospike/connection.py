"""Opening a client from an `aerospike://host:port[,host:port…]/namespace` URL, and retrying
what fails because the cluster could not be reached (never what the server refused)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import aerospike
from aerospike import exception as aex

from asg_grpc.domain.errors import Unavailable

T = TypeVar("T")

DEFAULT_PORT = 3000
COUNT_SHARDS = 16  # counter records per customer (counters.py)

# Failures of reaching the cluster, worth another try; everything else is the server's answer.
# (By name: the client's type stubs lack some of them.)
TRANSIENT: tuple[type[Exception], ...] = tuple(
    getattr(aex, name)
    for name in (
        "TimeoutError",
        "ClusterError",
        "ConnectionError",
        "NoResponse",
        "ClusterChangeError",
        "InvalidNodeError",
        "NoMoreConnectionsError",
        "MaxRetriesExceeded",
        "RecordBusy",
        "DeviceOverload",
    )
)


@dataclass(frozen=True, slots=True)
class AerospikeUrl:
    hosts: tuple[tuple[str, int], ...]
    namespace: str
    # Every set name starts with it, so several deployments (or test runs) share a namespace.
    set_prefix: str = ""
    # Records each customer's counters are spread over (counters.py); only ever raise it.
    count_shards: int = COUNT_SHARDS


def parse_url(url: str) -> AerospikeUrl:
    """`aerospike://h1:3000,h2:3000/asg?set_prefix=refinery_&count_shards=16`; ValueError
    names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "aerospike":
        raise ValueError(f"not an aerospike:// URL: {url!r}")
    hosts = []
    for item in parts.netloc.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if not host:
            raise ValueError(f"no host in {url!r}")
        if port and not port.isdigit():
            raise ValueError(f"port {port!r} is not a number in {url!r}")
        hosts.append((host, int(port) if port else DEFAULT_PORT))
    namespace = parts.path.strip("/")
    if not namespace or "/" in namespace:
        raise ValueError(f"the path must be one namespace in {url!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"set_prefix", "count_shards"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} in {url!r} (only set_prefix, count_shards)")
    shards = query.get("count_shards", [str(COUNT_SHARDS)])[-1]
    if not shards.isdigit() or not 1 <= int(shards) <= 1024:
        raise ValueError(f"count_shards must be a whole number from 1 to 1024, in {url!r}")
    prefix = query.get("set_prefix", [""])[-1]
    if not all(c.isalnum() or c == "_" for c in prefix):
        raise ValueError(f"set_prefix may hold letters, digits and _ only, in {url!r}")
    return AerospikeUrl(tuple(hosts), namespace, prefix, int(shards))


def connect(url: AerospikeUrl, *, timeout_ms: int = 1000) -> Any:
    """A connected client; Unavailable when no seed host answers."""
    config = {
        "hosts": list(url.hosts),
        "policies": {"total_timeout": timeout_ms},
        # A record's user key is kept, so scans and queries can give it back.
        "policy": {"key": aerospike.POLICY_KEY_SEND},
    }
    try:
        return aerospike.client(config).connect()
    except TRANSIENT as exc:
        raise Unavailable("the store is unreachable; retry shortly") from exc


def namespace_problem(info: str, namespace: str) -> str | None:
    """What keeps this store off the namespace, from the node's `namespace/<ns>` info answer:
    no such namespace, or one that refuses records with a TTL (the idempotency claims have
    one, ASG_IDEMPOTENCY_TTL) because its expiry thread is off (`nsup-period 0`) and
    `allow-ttl-without-nsup` is not set. None when it will do."""
    answer = info.partition("\t")[2].strip()
    fields = dict(item.partition("=")[::2] for item in answer.split(";") if "=" in item)
    if not fields or fields.get("type") == "unknown":
        return f"the cluster has no namespace {namespace!r}"
    if fields.get("nsup-period", "0") == "0" and fields.get("allow-ttl-without-nsup") != "true":
        return (
            f"namespace {namespace!r} has nsup-period 0, so it refuses records with a TTL"
            " (idempotency keys expire by record TTL): set nsup-period (e.g. 120) in its config"
        )
    return None


def check_namespace(client: Any, namespace: str, retry: Retry | None = None) -> None:
    """ValueError naming what is wrong (the core turns it into exit 2 naming ASG_STORE)."""
    info = (retry or Retry())(lambda: client.info_random_node(f"namespace/{namespace}"))
    problem = namespace_problem(str(info), namespace)
    if problem is not None:
        raise ValueError(problem)


@dataclass(frozen=True, slots=True)
class Retry:
    """A few tries with doubling back-off, then Unavailable (the gateway's 503 + Retry-After).

    Only safe around operations that are idempotent or guarded (CREATE_ONLY, generation
    checks): a timed-out write may have been applied, and the retry must find that harmless."""

    attempts: int = 4
    first_delay: float = 0.05
    sleep: Callable[[float], None] = time.sleep

    def __call__(self, operation: Callable[[], T]) -> T:
        delay = self.first_delay
        for attempt in range(self.attempts):
            try:
                return operation()
            except TRANSIENT as exc:
                if attempt == self.attempts - 1:
                    raise Unavailable("the store is unreachable; retry shortly") from exc
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises
