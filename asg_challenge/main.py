"""`asg-challenge`: parse settings (exit 2 saying why when they are wrong), open the store,
serve the app with uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from asg_challenge.app import App
from asg_challenge.gateway import Gateway
from asg_challenge.settings import SettingsError, parse
from asg_challenge.store import Store
from asg_common.config import masked


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = parse(argv)
    except SettingsError as exc:
        print(f"asg-challenge: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    os.umask(0o077)  # every file the gateway writes (store, WAL, secret, model) is 0600
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(settings.data_dir)
    gw = Gateway(settings, store)
    logging.getLogger().setLevel(gw.config.log_level)
    logging.getLogger("asg_challenge").info("asg-challenge starting %s", masked(settings))
    explore = float(os.environ.get("ASG_CHALLENGE_EXPLORE", "0.02"))
    uvicorn.run(
        App(gw, explore=explore),
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # X-Forwarded-For is believed only from --trusted-proxies (context.py)
        server_header=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


if __name__ == "__main__":
    main()
