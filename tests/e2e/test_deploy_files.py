"""The container files (Dockerfile, compose.yaml, deploy/aerospike.conf) against the code.

Docker cannot run here, so these check what would break `docker compose up` without it: a port,
a setting or a command the code does not have, and an Aerospike config the store refuses (the
config is started on the bundled asd, with only its paths and ports moved)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aerospike
import pytest
import yaml

from asg_grpc.settings import Settings
from asg_grpc.store.aerospike.connection import check_namespace, parse_url
from rest_gateway.settings import GatewaySettings
from tests.conftest import stop_process
from tests.store.conftest import BUNDLE, PORTS, REPO

SOURCES = ("asg_grpc", "rest_gateway", "asg_common")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def port_of(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def settings_the_code_reads() -> set[str]:
    names: set[str] = set()
    for package in SOURCES:
        for path in (REPO / package).rglob("*.py"):
            names |= set(re.findall(r"\bASG_[A-Z0-9_]+\b", path.read_text()))
    return names


def test_every_setting_named_is_one_the_code_reads(compose: dict[str, Any]) -> None:
    named = {key for service in compose["services"].values() for key in service.get("environment", {})}
    named |= set(re.findall(r"ENV (ASG_[A-Z_]+)=", (REPO / "Dockerfile").read_text()))
    assert named, "no settings found"
    assert named - settings_the_code_reads() == set()


def test_ports_and_addresses_are_the_codes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    core, gateway = services["core"]["environment"], services["gateway"]["environment"]
    # The seed's local path: the gateway on 8081, which is also the gateway's default.
    assert port_of(gateway["ASG_HTTP_ADDR"]) == 8081 == port_of(GatewaySettings().http_addr)
    assert port_of(core["ASG_GRPC_ADDR"]) == port_of(Settings().grpc_addr)
    host, _, port = gateway["ASG_CORE_ADDR"].rpartition(":")
    assert host == "core" and int(port) == port_of(core["ASG_GRPC_ADDR"])
    store = parse_url(core["ASG_STORE"])
    conf = (REPO / "deploy" / "aerospike.conf").read_text()
    assert store.hosts == (("aerospike", int(re.search(r"service \{[^}]*port (\d+)", conf)[1])),)  # type: ignore[index]
    assert f"namespace {store.namespace} {{" in conf
    published = {
        name: {int(p.rsplit(":", 2)[-2]) for p in service.get("ports", [])}
        for name, service in services.items()
    }
    assert published["gateway"] == {8081}
    assert published["core"] == {port_of(core["ASG_GRPC_ADDR"]), port_of(core["ASG_METRICS_ADDR"])}
    expose = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert expose is not None
    exposed = {int(p) for p in expose[1].split()}
    assert published["gateway"] | published["core"] <= exposed


def test_commands_are_installed_scripts_and_the_image_holds_every_package(compose: dict[str, Any]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    scripts = set(project["project"]["scripts"])
    commands = {s["command"][0] for n, s in compose["services"].items() if n != "aerospike"}
    assert commands == {"asg-server", "asg-gateway"} and commands <= scripts
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'^CMD \["([a-z-]+)"\]', dockerfile, re.M)[1] in scripts  # type: ignore[index]
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert copied == packages


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def node_on_the_compose_config(tmp_path: Path) -> Iterator[int]:
    """asd started on deploy/aerospike.conf; only paths, ports and the listen address moved."""
    if not (BUNDLE / "bin" / "asd").exists():
        pytest.skip(f"no Aerospike bundle at {BUNDLE}: the compose config cannot be started here")
    work = tmp_path / "work"
    for sub in ("smd", "usr/udf/lua"):
        (work / sub).mkdir(parents=True)
    (tmp_path / "data").mkdir()
    ports = free_ports(4)
    conf = (REPO / "deploy" / "aerospike.conf").read_text()
    for default, port in zip(PORTS, ports, strict=True):
        conf = conf.replace(f"port {default}\n", f"port {port}\n")
    conf = conf.replace("/opt/aerospike/data", str(tmp_path / "data"))
    conf = conf.replace("address any", "address 127.0.0.1")
    conf = conf.replace(
        "service {\n", f"service {{\n\twork-directory {work}\n\tpidfile {tmp_path / 'asd.pid'}\n", 1
    ).replace("proto-fd-max 15000", "proto-fd-max 1024")
    conf += f"\nmod-lua {{\n\tuser-path {work / 'usr/udf/lua'}\n}}\n"
    (tmp_path / "asd.conf").write_text(conf)
    log = (tmp_path / "asd.log").open("w")
    asd = subprocess.Popen(
        [str(BUNDLE / "bin" / "asd"), "--config-file", str(tmp_path / "asd.conf"), "--foreground"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "service ready" not in (tmp_path / "asd.log").read_text():
            assert asd.poll() is None, (tmp_path / "asd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "asd not ready within 60 s"
            time.sleep(0.2)
        yield ports[0]
    finally:
        stop_process(asd, 30)
        log.close()


def connected(port: int) -> Any:
    """A client, once the one-node cluster has formed ("service ready" comes a little before)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return aerospike.client({"hosts": [("127.0.0.1", port)]}).connect()
        except aerospike.exception.ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_compose_aerospike_config_is_one_the_store_accepts(
    compose: dict[str, Any], node_on_the_compose_config: int
) -> None:
    store = parse_url(compose["services"]["core"]["environment"]["ASG_STORE"])
    client = connected(node_on_the_compose_config)
    try:
        check_namespace(client, store.namespace)  # the namespace exists and takes TTLs
        key = (store.namespace, "deploy_check", "k")
        client.put(key, {"v": 1}, policy={"ttl": 60})  # a TTL, as idempotency claims have
        assert client.get(key)[2] == {"v": 1}
    finally:
        client.close()
