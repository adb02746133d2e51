"""aerospike:// URLs, and an unreachable cluster answered as Unavailable (the gateway's 503)."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from aerospike import exception as aex

from asg_grpc.domain.errors import Unavailable
from asg_grpc.store.aerospike import AerospikeStore
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry, connect, namespace_problem, parse_url


def test_a_url_names_seed_hosts_namespace_and_set_prefix() -> None:
    assert parse_url("aerospike://10.0.0.1:3100,db2/asg?set_prefix=shop_") == AerospikeUrl(
        (("10.0.0.1", 3100), ("db2", 3000)), "asg", "shop_"
    )
    assert parse_url("aerospike://127.0.0.1:3000/asg").set_prefix == ""


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/asg.db",
        "aerospike:///asg",
        "aerospike://h:port/asg",
        "aerospike://h:3000/",
        "aerospike://h/a/b",
    ],
)
def test_a_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_no_node_listening_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unavailable):
        connect(AerospikeUrl((("127.0.0.1", port),), "asg"), timeout_ms=200)


def test_retry_backs_off_then_gives_up_as_unavailable() -> None:
    waits: list[float] = []
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise aex.TimeoutError()
        return "done"

    assert Retry(sleep=waits.append)(flaky) == "done"
    assert waits == [0.05, 0.1]

    def down() -> None:
        raise aex.ClusterError()

    with pytest.raises(Unavailable):
        Retry(attempts=3, sleep=waits.append)(down)
    assert waits == [0.05, 0.1, 0.05, 0.1]


def test_a_namespace_that_refuses_ttls_or_does_not_exist_is_named() -> None:
    ok = "namespace/asg\tobjects=0;nsup-period=1;allow-ttl-without-nsup=false;default-ttl=0"
    assert namespace_problem(ok, "asg") is None
    assert namespace_problem(ok.replace("nsup-period=1", "nsup-period=0"), "asg") is not None
    allowed = ok.replace("nsup-period=1", "nsup-period=0").replace("nsup=false", "nsup=true")
    assert namespace_problem(allowed, "asg") is None
    assert "no namespace" in (namespace_problem("namespace/x\ttype=unknown\n", "x") or "")


def test_opening_a_namespace_the_cluster_lacks_is_refused(aerospike_url: AerospikeUrl) -> None:
    with pytest.raises(ValueError, match="no namespace 'nosuch'"):
        AerospikeStore(replace(aerospike_url, namespace="nosuch"))
