"""`asg-challenge`: parse settings (exit 2 saying why when they are wrong, a taken listen
address included), open the store, serve the app with uvicorn on the socket bound here."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from asg_challenge.app import App
from asg_challenge.gateway import Gateway
from asg_challenge.serving import HttpProtocol
from asg_challenge.settings import SettingsError, parse
from asg_challenge.store import Store
from asg_common.config import masked
from asg_common.listen import listen

EXIT_SETTINGS = 2  # a setting that cannot be used, like argparse's exit code for a bad flag
EXIT_STARTUP = 3  # the app did not start (uvicorn's own code for it)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = parse(argv)
        try:
            sock = listen(settings.listen_host, settings.listen_port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SettingsError(
                f"--listen / ASG_CHALLENGE_LISTEN {settings.listen_host}:{settings.listen_port}:"
                f" cannot listen there ({reason})"
            ) from None
    except SettingsError as exc:
        print(f"asg-challenge: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS) from exc
    os.umask(0o077)  # every file the gateway writes (store, WAL, secret, model) is 0600
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(settings.data_dir)
    gw = Gateway(settings, store)
    logging.getLogger().setLevel(gw.config.log_level)
    logging.getLogger("asg_challenge").info("asg-challenge starting %s", masked(settings))
    config = uvicorn.Config(
        App(gw, explore=settings.explore),
        loop="uvloop",
        http=HttpProtocol,  # httptools, one socket write per response (serving.py)
        log_level=gw.config.log_level.lower(),
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # X-Forwarded-For is believed only from --trusted-proxies (context.py)
        server_header=False,
        date_header=False,  # one Date per response: the upstream's, else ours (serving.dated)
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    # Ctrl-C: served until then and stopped gracefully; no traceback (as uvicorn.run).
    with sock, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(EXIT_STARTUP)


if __name__ == "__main__":
    main()
