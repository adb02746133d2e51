"""The stack as real processes (core, gateway): started, watched, stopped or killed.

`asg dev` and the end-to-end tests use the same class, so the tests exercise exactly what a
newcomer runs. Stopping sends SIGTERM (gateway first: it depends on the core) and waits;
`kill` sends SIGKILL, for crash tests.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import httpx
import orjson

from asg_grpc.domain.workers import p2pkh_address
from asg_grpc.operator import find_operator_token, register_worker
from asg_grpc.settings import Settings

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A process of the stack died or did not become ready."""


def free_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Stack:
    http_addr: str
    grpc_addr: str
    data_dir: Path
    # None: children write to our stdout/stderr; else one <name>.log file each.
    log_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __enter__(self) -> Stack:
        """Start core and gateway and wait until healthy; stop everything on exit."""
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.http_addr}"

    def _environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "ASG_GRPC_ADDR": self.grpc_addr,
            "ASG_CORE_ADDR": self.grpc_addr,
            "ASG_HTTP_ADDR": self.http_addr,
            "ASG_DATA_DIR": str(self.data_dir),
            # Stacks started here (tests, `asg dev`) call receivers on this machine.
            "ASG_ALLOW_PRIVATE_URLS": "1",
            **self.env,
        }

    def spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) one named process of the stack."""
        out: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(out)
        bin_dir = Path(sys.executable).parent
        proc = subprocess.Popen(
            [str(bin_dir / command[0]), *command[1:]],
            env={**self._environ(), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            # Own process group: a terminal's Ctrl-C reaches only `asg dev`, which then stops
            # the processes in order (gateway before core).
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_core(self) -> None:
        self.spawn("core", ["asg-server"])

    def start(self) -> None:
        self.start_core()
        self.spawn("gateway", ["asg-gateway"])

    def dev_workers(self, count: int) -> list[str]:
        """Tokens of `count` simulated workers, registered once and kept in the data dir."""
        path = self.data_dir / "dev_workers.json"
        tokens: list[str] = orjson.loads(path.read_bytes()) if path.exists() else []
        if len(tokens) < count:
            settings = Settings(
                data_dir=self.data_dir, operator_token=self._environ().get("ASG_OPERATOR_TOKEN")
            )
            operator = find_operator_token(settings)
            if operator is None:
                raise StackError(f"no operator token in {settings.operator_token_path}")
            for i in range(len(tokens), count):
                address = p2pkh_address(hashlib.sha256(f"dev-worker-{i}".encode()).digest()[:20])
                try:
                    reply = register_worker(self.grpc_addr, operator, f"dev-worker-{i}", address)
                except grpc.RpcError as exc:
                    raise StackError(f"registering dev workers: {exc.code().name}: {exc.details()}") from exc
                tokens.append(reply.token)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(tokens))
        return tokens[:count]

    def start_workers(self, count: int, *args: str, servers: list[str] | None = None) -> None:
        """`count` simulated workers (`worker-0`, …), each with its own worker token and one
        agent per core in `servers` (default: the stack's core; `worker-0`, `worker-0@1`, …):
        with several cores each dispatches its own share of the tasks (docs/storage.md)."""
        for i, token in enumerate(self.dev_workers(count)):
            for j, server in enumerate(servers or [self.grpc_addr]):
                self.spawn(
                    f"worker-{i}" + (f"@{j}" if j else ""),
                    ["asg-worker", "--server", server, "--labeler", "simulated", *args],
                    env={"ASG_WORKER_TOKEN": token},
                )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until GET /v1/health says ok, which needs both the gateway and the core."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base_url}/v1/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise StackError(f"the stack did not become healthy within {timeout:.0f}s")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}")

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would: no shutdown code runs."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """SIGTERM in dependency order, each group given time to finish before the next:
        workers and other clients (they drain against a live core), the gateways (`gateway…`),
        the cores (`core…`)."""
        groups = [
            [p for n, p in self.procs.items() if not n.startswith(("gateway", "core"))],
            [p for n, p in self.procs.items() if n.startswith("gateway")],
            [p for n, p in self.procs.items() if n.startswith("core")],
        ]
        for group in groups:
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for proc in group:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
