"""The agent's configuration: flags override `ASG_WORKER_*` variables, which override defaults.

Every flag has an environment twin so the token can stay out of `ps` and so `asg dev` and
the benchmarks can configure agents without building command lines. Values are checked
once, here, and each error names both the flag and the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from asg_common.hosts import is_loopback_host
from worker_agent.errors import ConfigError

LABELERS = ("interactive", "simulated", "web")
PERSON_LABELERS = frozenset({"interactive", "web"})  # a person answers: one task at a time
TASK_TYPES = ("image_classification", "text_classification", "sentiment", "moderation")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_IN_FLIGHT_LIMIT = 256  # the contract's bound (Hello.max_in_flight is 1..256)
DEFAULT_MAX_IN_FLIGHT = {"interactive": 1, "web": 1, "simulated": 16}
DEFAULT_WEB_PORT = 8765

# field name → environment variable; the flag is `--` + the field name with dashes.
ENV = {
    "server": "ASG_WORKER_SERVER",
    "token": "ASG_WORKER_TOKEN",
    "labeler": "ASG_WORKER_LABELER",
    "max_in_flight": "ASG_WORKER_MAX_IN_FLIGHT",
    "task_types": "ASG_WORKER_TASK_TYPES",
    "truth": "ASG_WORKER_TRUTH",
    "accuracy": "ASG_WORKER_ACCURACY",
    "always": "ASG_WORKER_ALWAYS",
    "seed": "ASG_WORKER_SEED",
    "delay": "ASG_WORKER_DELAY",
    "heartbeat": "ASG_WORKER_HEARTBEAT",
    "progress": "ASG_WORKER_PROGRESS",
    "drain_timeout": "ASG_WORKER_DRAIN_TIMEOUT",
    "answer_timeout": "ASG_WORKER_ANSWER_TIMEOUT",
    "web_port": "ASG_WORKER_WEB_PORT",
    "tls": "ASG_WORKER_TLS",
    "ca_file": "ASG_WORKER_CA_FILE",
    "log_level": "ASG_LOG_LEVEL",
    "log_file": "ASG_WORKER_LOG_FILE",
}


def source(name: str) -> str:
    """How a person sets field `name`, for error messages: `--max-in-flight / ASG_WORKER_...`."""
    return f"--{name.replace('_', '-')} / {ENV[name]}"


@dataclass(frozen=True)
class WorkerSettings:
    server: str = "127.0.0.1:50051"
    token: str = ""
    labeler: str = ""
    max_in_flight: int | None = None  # None: the labeler's default
    task_types: tuple[str, ...] = ()  # empty: every type the worker is registered for
    truth: Path | None = None
    accuracy: float = 1.0
    always: str | None = None
    seed: int | None = None
    delay: float = 0.0
    heartbeat: float = 5.0
    progress: float = 10.0  # 0 turns the progress line off
    drain_timeout: float = 10.0
    answer_timeout: float = 30.0  # a person's question is handed back after this long; 0 = never
    web_port: int = DEFAULT_WEB_PORT  # web: the labeling page on 127.0.0.1; 0 = any free port
    tls: bool = False
    ca_file: Path | None = None
    log_level: str | None = None  # None: INFO, or WARNING for a person at a terminal (main)
    log_file: Path | None = None  # None: stderr

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV[f.name], "").strip()
            if raw:
                values[f.name] = _parse(f.name, raw)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> WorkerSettings:
        """Apply command-line flags that were given (None means not given)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def effective_max_in_flight(self) -> int:
        if self.labeler in PERSON_LABELERS:
            return 1  # one person answers one question at a time
        return self.max_in_flight or DEFAULT_MAX_IN_FLIGHT.get(self.labeler, 1)

    @property
    def server_is_loopback(self) -> bool:
        return is_loopback_host(self.server.rsplit(":", 1)[0])

    def validate(self) -> WorkerSettings:
        """Raise ConfigError naming the flag and variable of the first unusable value."""
        if not self.labeler:
            raise ConfigError(f"{source('labeler')} is required: one of {', '.join(LABELERS)}")
        if self.labeler not in LABELERS:
            raise ConfigError(
                f"{source('labeler')} must be one of {', '.join(LABELERS)}, got {self.labeler!r}"
            )
        if not self.token:
            raise ConfigError(f"{source('token')} is required (the worker token, wk_…)")
        if not self.token.startswith("wk_"):
            raise ConfigError(f"{source('token')} must be a worker token (wk_…), not a customer API key")
        host, sep, port = self.server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{source('server')} must be HOST:PORT, got {self.server!r}")
        if self.max_in_flight is not None and not 1 <= self.max_in_flight <= MAX_IN_FLIGHT_LIMIT:
            raise ConfigError(f"{source('max_in_flight')} must be 1..{MAX_IN_FLIGHT_LIMIT}")
        bad = [t for t in self.task_types if t not in TASK_TYPES]
        if bad:
            raise ConfigError(
                f"{source('task_types')}: unknown {', '.join(bad)}; known: {', '.join(TASK_TYPES)}"
            )
        if not 0.0 <= self.accuracy <= 1.0:
            raise ConfigError(f"{source('accuracy')} must be between 0 and 1, got {self.accuracy}")
        for name in ("delay", "progress", "answer_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source(name)} must not be negative")
        for name in ("heartbeat", "drain_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{source(name)} must be positive")
        if self.log_level is not None and self.log_level not in LOG_LEVELS:
            raise ConfigError(f"{source('log_level')} must be one of {', '.join(LOG_LEVELS)}")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(f"{source('ca_file')}: no such file {self.ca_file}")
        if self.log_file is not None and not self.log_file.parent.is_dir():
            raise ConfigError(f"{source('log_file')}: no such directory {self.log_file.parent}")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"{source('web_port')} must be 0..65535, got {self.web_port}")
        if self.labeler in PERSON_LABELERS and (self.truth or self.always or self.delay):
            raise ConfigError("--truth, --always and --delay only apply to --labeler simulated")
        if self.truth is not None and self.always is not None:
            raise ConfigError("--truth and --always exclude each other")
        return self


def _parse(name: str, raw: str) -> Any:
    """Turn one environment value into the field's type; errors name the variable."""
    try:
        if name in ("max_in_flight", "seed", "web_port"):
            return int(raw)
        if name in ("accuracy", "delay", "heartbeat", "progress", "drain_timeout", "answer_timeout"):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{ENV[name]} must be a number, got {raw!r}") from None
    if name in ("truth", "ca_file", "log_file"):
        return Path(raw)
    if name == "task_types":
        return split_list(raw)
    if name == "tls":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{ENV[name]} must be 1/true or 0/false, got {raw!r}")
    if name == "log_level":
        return raw.upper()
    return raw


def split_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())
