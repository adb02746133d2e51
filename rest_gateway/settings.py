"""The gateway's configuration, read once by `asg-gateway` from `ASG_*` environment variables
(flags win), with working defaults. The gateway holds no secrets: its banner shows it all."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable (or flag)."""


@dataclass(frozen=True)
class GatewaySettings:
    http_addr: str = "127.0.0.1:8081"
    # Where the core listens; the gateway is stateless and only ever talks to it.
    core_addr: str = "127.0.0.1:50051"
    core_timeout: float = 10.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        """Raises SettingsError naming the first variable that cannot be used."""
        env = os.environ if env is None else env
        timeout = env.get("ASG_CORE_TIMEOUT")
        try:
            core_timeout = float(timeout) if timeout else cls.core_timeout
        except ValueError:
            core_timeout = -1.0
        if core_timeout <= 0:
            raise SettingsError(f"ASG_CORE_TIMEOUT must be a positive number of seconds, got {timeout!r}")
        log_level = (env.get("ASG_LOG_LEVEL") or cls.log_level).upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"ASG_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            http_addr=env.get("ASG_HTTP_ADDR", cls.http_addr),
            core_addr=env.get("ASG_CORE_ADDR", env.get("ASG_GRPC_ADDR", cls.core_addr)),
            core_timeout=core_timeout,
            log_level=log_level,
        )

    def with_overrides(self, **changes: Any) -> GatewaySettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.http_addr.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(f"ASG_HTTP_ADDR / --http must be HOST:PORT, got {self.http_addr!r}")
        return host or "127.0.0.1", int(port)
