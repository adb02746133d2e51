"""`asg-gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from asg_common import logs
from asg_common.config import masked
from rest_gateway.app import create_app
from rest_gateway.settings import GatewaySettings, SettingsError

log = logging.getLogger("asg.gateway")

EXIT_SETTINGS = 2  # a setting that cannot be used, like argparse's exit code for a bad flag


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
    except SettingsError as exc:
        print(f"asg-gateway: {exc}", file=sys.stderr)
        sys.exit(EXIT_SETTINGS)
    logs.configure(settings.log_level)
    log.info("gateway settings", extra={"settings": masked(settings)})
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
