"""`asg-gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

import uvicorn

from asg_common import logs
from asg_common.config import masked
from asg_common.listen import listen
from rest_gateway.app import create_app
from rest_gateway.settings import GatewaySettings, SettingsError

log = logging.getLogger("asg.gateway")

EXIT_SETTINGS = 2  # a setting that cannot be used, like argparse's exit code for a bad flag
EXIT_STARTUP = 3  # the app did not start (uvicorn's own code for it)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asg-gateway", description="Serve the /v1 REST API.")
    p.add_argument("--http", metavar="HOST:PORT", help="listen address (ASG_HTTP_ADDR)")
    p.add_argument("--core", metavar="HOST:PORT", help="the core's gRPC address (ASG_CORE_ADDR)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Settings are read here, once; one that cannot be used exits 2 with its name, no traceback."""
    args = parser().parse_args(argv)
    try:
        settings = GatewaySettings.from_env().with_overrides(http_addr=args.http, core_addr=args.core)
        host, port = settings.host_port
        try:
            sock = listen(host, port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SettingsError(
                f"ASG_HTTP_ADDR / --http {settings.http_addr}: cannot listen there ({reason})"
            ) from None
    except SettingsError as exc:
        print(f"asg-gateway: {exc}", file=sys.stderr)
        sys.exit(EXIT_SETTINGS)
    logs.configure(settings.log_level)
    log.info("gateway settings", extra={"settings": masked(settings)})
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    bound_host, bound_port = sock.getsockname()[:2]
    log.info("gateway listening", extra={"http": f"{bound_host}:{bound_port}"})
    # Ctrl-C: served until then and stopped gracefully; no traceback (as uvicorn.run).
    with sock, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(EXIT_STARTUP)


if __name__ == "__main__":
    main()
