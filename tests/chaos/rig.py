"""The stack under test, as real processes on loopback, wired for faults: the core
(`asg-server`) behind a TCP proxy (proxy.py) that the gateway (`asg-gateway`) and the
simulated `asg-worker` agents reach it through, an HTTPS webhook receiver whose answers the
campaign scripts, and the witness labeler. Timeouts are short so faults show within a round:
2 s leases, a 2 s gateway deadline, 1 s webhook attempts on a retry schedule scaled by 0.01."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from asg_grpc.devstack import Stack, free_addr
from tests.chaos.proxy import Proxy
from tests.chaos.witness import Witness
from tests.core.webhooks.receiver import Receiver, make_cert

WORKERS = 4
LEASE_SECONDS = 2
CORE_TIMEOUT = 2
WEBHOOK_TIMEOUT = 1
HOOK_ANSWERS = {"ok": (200, 0.0), "fail": (500, 0.0), "hang": (200, 3.0 * WEBHOOK_TIMEOUT)}


@dataclass
class Rig:
    workdir: Path
    stack: Stack = field(init=False)
    proxy: Proxy = field(init=False)
    receiver: Receiver = field(init=False)
    witness: Witness = field(init=False)
    hook_mode: str = "ok"
    tokens: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)  # processes found dead that no fault killed
    answered_ok: set[int] = field(default_factory=set)  # webhook requests (1-based) answered 200 in time

    def __post_init__(self) -> None:
        cert, key = make_cert(self.workdir)
        self.stack = Stack(
            http_addr=free_addr(),
            grpc_addr=free_addr(),
            data_dir=self.workdir / "data",
            log_dir=self.workdir / "logs",
            env={
                "ASG_RATE_LIMIT": "off",
                "ASG_SANDBOX_LABEL_QUOTA": "100000000",
                "ASG_LEASE_SECONDS": str(LEASE_SECONDS),
                "ASG_WORKER_IDLE_TIMEOUT": "5",
                "ASG_CORE_TIMEOUT": str(CORE_TIMEOUT),
                "ASG_WEBHOOK_TIMEOUT": str(WEBHOOK_TIMEOUT),
                "ASG_WEBHOOK_RETRY_SCALE": "0.01",
                "ASG_BLOCK_INTERVAL": "0.5",
                "ASG_SETTLE_BATCH": "50",
                "ASG_SETTLE_WINDOW": "0.2",
                "SSL_CERT_FILE": str(cert),
            },
        )
        self.proxy = Proxy(self.stack.grpc_addr)
        self.receiver = Receiver(cert, key, script=self._hook_answer)

    def start(self) -> None:
        self.proxy.start()
        self.receiver.start()
        self.stack.start_core()
        self.start_gateway()
        self.stack.wait_ready()
        self.tokens = self.stack.dev_workers(WORKERS + 1)  # the last one is the witness's
        for i in range(WORKERS):
            self.start_worker(i)
        self.witness = Witness(self.proxy.addr, self.tokens[WORKERS]).start()

    def _hook_answer(self, n: int) -> tuple[int, float]:
        mode = self.hook_mode
        if mode == "ok":
            self.answered_ok.add(n)
        return HOOK_ANSWERS[mode]

    def delivered_ids(self) -> set[str]:
        """The `ASG-Delivery` ids the receiver answered 200 in time."""
        return {
            r.headers.get("ASG-Delivery", "")
            for n, r in enumerate(self.receiver.requests, start=1)
            if n in self.answered_ok
        }

    def stop(self) -> None:
        if hasattr(self, "witness"):
            self.witness.stop()
        self.thaw_all()
        self.stack.stop()
        self.receiver.stop()
        self.proxy.stop()

    def start_gateway(self) -> None:
        self.stack.spawn("gateway", ["asg-gateway"], env={"ASG_CORE_ADDR": self.proxy.addr})

    def start_worker(self, i: int) -> None:
        self.stack.spawn(
            f"worker-{i}",
            [
                *("asg-worker", "--server", self.proxy.addr, "--labeler", "simulated"),
                *("--accuracy", "0.8", "--seed", str(i), "--delay", "0.05"),
                *("--max-in-flight", "8", "--heartbeat", "1"),
            ],
            env={"ASG_WORKER_TOKEN": self.tokens[i]},
        )

    def restart(self, name: str) -> None:
        if name == "core":
            self.stack.start_core()
        elif name == "gateway":
            self.start_gateway()
        else:
            self.start_worker(int(name.removeprefix("worker-")))

    def thaw_all(self) -> None:
        """Whatever a fault left stopped or stalled goes again (a fault that failed half-way)."""
        self.proxy.thaw()
        self.hook_mode = "ok"
        for proc in self.stack.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)

    def revive(self, round_no: int) -> None:
        """Restart any process that died by itself, noting it: the stack must go on."""
        for name, proc in list(self.stack.procs.items()):
            if proc.poll() is not None:
                self.crashes.append(f"round {round_no}: {name} exited with code {proc.returncode}")
                self.restart(name)
        self.stack.wait_ready()
