"""`asg-gateway`: serve the REST API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from asg_common import logs
from rest_gateway.app import create_app
from rest_gateway.settings import GatewaySettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asg-gateway", description="Serve the /v1 REST API.")
    parser.add_argument("--http", metavar="HOST:PORT", help="listen address (ASG_HTTP_ADDR)")
    parser.add_argument("--core", metavar="HOST:PORT", help="the core's gRPC address (ASG_CORE_ADDR)")
    args = parser.parse_args(argv)
    settings = GatewaySettings.from_env().with_overrides(http_addr=args.http, core_addr=args.core)
    logs.configure(settings.log_level)
    host, port = settings.host_port
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
