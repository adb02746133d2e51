"""`asg worker register` as an operator runs it, against the real core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc

from asg_grpc.devstack import Stack
from asg_grpc.v1 import labeling_pb2, labeling_pb2_grpc

ASG = str(Path(sys.executable).with_name("asg"))
ADDRESS = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ASG, "worker", "register", *args], capture_output=True, text=True, timeout=30, env=env
    )


def test_register_prints_a_token_that_opens_a_work_stream(stack: Stack) -> None:
    done = run(
        "--name",
        "alice",
        "--payout-address",
        ADDRESS,
        "--grpc",
        stack.grpc_addr,
        "--data-dir",
        str(stack.data_dir),
    )
    assert done.returncode == 0, done.stderr
    fields = dict(
        line.split(":", 1) for line in done.stdout.splitlines() if line.startswith(("worker_id", "token"))
    )
    token = fields["token"].strip()
    assert fields["worker_id"].strip().startswith("wkr_") and token.startswith("wk_")
    with grpc.insecure_channel(stack.grpc_addr) as channel:
        call = labeling_pb2_grpc.LabelingServiceStub(channel).Work(
            iter([labeling_pb2.WorkerMessage(hello=labeling_pb2.Hello(max_in_flight=1))]),
            metadata=[("authorization", f"Bearer {token}")],
        )
        assert next(call).WhichOneof("kind") == "welcome"
        call.cancel()


def test_register_names_a_bad_payout_address(stack: Stack) -> None:
    done = run(
        "--name",
        "bob",
        "--payout-address",
        "1notanaddress",
        "--grpc",
        stack.grpc_addr,
        "--data-dir",
        str(stack.data_dir),
    )
    assert done.returncode == 1
    assert "INVALID_ARGUMENT" in done.stderr and "payout_address" in done.stderr


def test_register_without_an_operator_token_says_where_it_looked(stack: Stack, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    done = run(
        "--name",
        "carol",
        "--payout-address",
        ADDRESS,
        "--grpc",
        stack.grpc_addr,
        "--data-dir",
        str(tmp_path),
        env=env,
    )
    assert done.returncode == 2
    assert "operator token" in done.stderr and str(tmp_path) in done.stderr


def test_a_challenge_gateway_registered_so_may_ask_for_opted_in_work_only(stack: Stack) -> None:
    """docs/challenge.md: `--challenge-gateway` is what lets a stream say `opted_in_only`; the
    same hello from a plain worker is refused naming the field."""
    firsts = []
    for name, flags in (("site-gw", ["--challenge-gateway"]), ("plain", [])):
        done = run(
            "--name", name, "--payout-address", ADDRESS, *flags,
            "--grpc", stack.grpc_addr, "--data-dir", str(stack.data_dir),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        token = next(line for line in done.stdout.splitlines() if line.startswith("token")).split(":")[1]
        with grpc.insecure_channel(stack.grpc_addr) as channel:
            hello = labeling_pb2.Hello(max_in_flight=1, opted_in_only=True)
            call = labeling_pb2_grpc.LabelingServiceStub(channel).Work(
                iter([labeling_pb2.WorkerMessage(hello=hello)]),
                metadata=[("authorization", f"Bearer {token.strip()}")],
            )
            try:
                firsts.append(next(call).WhichOneof("kind"))
            except grpc.RpcError as exc:
                firsts.append(f"{exc.code().name}: {exc.details()}")
            call.cancel()
    assert firsts[0] == "welcome"
    assert firsts[1].startswith("INVALID_ARGUMENT: hello.opted_in_only is for workers registered as")
