"""`asg-worker`: run one labeler against the core until SIGTERM / Ctrl-C.

Exit codes: 0 after a clean drain, 1 when stopped by a second signal (no drain) or an
unexpected error, 2 for a configuration the agent cannot use or a token the core refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import uvloop

from asg_common import logs
from worker_agent import AGENT
from worker_agent.errors import AuthError, ConfigError, WorkerError
from worker_agent.labelers import InteractiveLabeler, WebLabeler, create
from worker_agent.settings import (
    DEFAULT_WEB_PORT,
    ENV,
    LABELERS,
    PERSON_LABELERS,
    WorkerSettings,
    source,
    split_list,
)

log = logging.getLogger("worker_agent")

EXIT_OK, EXIT_FORCED, EXIT_CONFIG = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asg-worker",
        description="Label tasks from an ASG Refinery core. Every flag has an environment twin "
        "(shown in brackets); prefer ASG_WORKER_TOKEN over --token, which `ps` shows to everyone.",
    )

    def flag(name: str, help: str, **kw: Any) -> None:
        field = name.removeprefix("--").replace("-", "_")
        p.add_argument(name, help=f"{help} [{ENV[field]}]", **kw)

    flag("--server", "the core's gRPC address, HOST:PORT (127.0.0.1:50051)", metavar="HOST:PORT")
    flag("--token", "the worker token, wk_…", metavar="TOKEN")
    flag("--labeler", "who answers", choices=LABELERS)
    flag("--max-in-flight", "tasks held at once, 1-256 (simulated 16; a person always 1)", type=int)
    flag("--task-types", "comma-separated task types to accept (default: all registered)", type=split_list)
    flag("--truth", "simulated: answer key, CSV 'data_url,label' or JSON object", type=Path, metavar="FILE")
    flag("--accuracy", "simulated: probability of answering the truth (1.0)", type=float, metavar="P")
    flag("--always", "simulated: always answer this option", metavar="OPTION")
    flag("--seed", "simulated: random seed, for reproducible runs", type=int)
    flag("--delay", "simulated: seconds spent on each label (0)", type=float, metavar="SECONDS")
    flag("--heartbeat", "seconds between heartbeats (5)", type=float, metavar="SECONDS")
    flag(
        "--progress",
        "seconds between progress log lines; 0 turns them off (10)",
        type=float,
        metavar="SECONDS",
    )
    flag(
        "--drain-timeout",
        "on stop: max seconds to finish held work, then again for acks (10)",
        type=float,
        metavar="SECONDS",
    )
    flag(
        "--answer-timeout",
        "interactive, web: seconds to wait for an answer before handing the task back; 0 = no limit (30)",
        type=float,
        metavar="SECONDS",
    )
    flag(
        "--web-port",
        f"web: the labeling page's port on 127.0.0.1; 0 = any free port ({DEFAULT_WEB_PORT})",
        type=int,
        metavar="PORT",
    )
    flag("--tls", "connect with TLS (system roots unless --ca-file)", action="store_true", default=None)
    flag("--ca-file", "PEM roots to trust for --tls", type=Path, metavar="FILE")
    flag(
        "--log-level",
        "DEBUG, INFO, WARNING or ERROR (INFO; interactive without --log-file: WARNING)",
        metavar="LEVEL",
        type=str.upper,
    )
    flag("--log-file", "append the JSON log lines to FILE instead of stderr", type=Path, metavar="FILE")
    p.add_argument("--version", action="version", version=AGENT)
    return p


def settings_from(argv: list[str] | None) -> WorkerSettings:
    args = vars(parser().parse_args(argv))
    return WorkerSettings.from_env().with_overrides(**args).validate()


async def serve(settings: WorkerSettings) -> int:
    """Run the agent; the first SIGTERM/SIGINT drains, a second one exits at once."""
    # Imported here, not at the top: gRPC reads GRPC_VERBOSITY once, when it is imported (main).
    from worker_agent.agent import Agent

    labeler = create(settings)
    if isinstance(labeler, InteractiveLabeler):
        labeler.greet()
    agent = Agent(settings, labeler)
    if isinstance(labeler, WebLabeler):
        labeler.attach(agent.stats)
        url = await labeler.start()
        print(f"asg-worker: label in your browser at {url} (Ctrl-C to stop)", flush=True)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    forced = False

    def on_signal(name: str) -> None:
        nonlocal forced
        if agent.stopping:
            log.warning("second signal: exiting without draining", extra={"signal": name})
            forced = True
            main.cancel()
            return
        log.info("stopping: draining held work", extra={"signal": name})
        agent.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        await agent.run()
    except asyncio.CancelledError:
        if not forced:
            raise
        return EXIT_FORCED
    return EXIT_OK


def log_level(settings: WorkerSettings) -> str:
    """INFO, unless a person answers in this terminal and the log has no file of its own: then
    WARNING, so JSON lines never scroll through the question (docs/worker.md)."""
    if settings.log_level is not None:
        return settings.log_level
    if settings.labeler == "interactive" and settings.log_file is None:
        return "WARNING"
    return "INFO"


def configure_logs(settings: WorkerSettings) -> None:
    """JSON lines on stderr, or appended to --log-file; a file that cannot be opened exits 2."""
    logs.configure(log_level(settings))
    if settings.log_file is None:
        return
    try:
        handler = logging.FileHandler(settings.log_file, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source('log_file')}: cannot open {settings.log_file}: {exc.strerror}") from None
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().handlers[:] = [handler]


def main(argv: list[str] | None = None) -> None:
    # gRPC's C core prints its own unstructured lines (e.g. on every GOAWAY when the core
    # restarts); our JSON log already says what happened. GRPC_VERBOSITY set by a user wins.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        settings = settings_from(argv)
        configure_logs(settings)
        if settings.labeler in PERSON_LABELERS and (settings.max_in_flight or 1) > 1:
            log.warning(f"{settings.labeler} labeler holds one task at a time; --max-in-flight ignored")
        if settings.labeler == "interactive" and not sys.stdin.isatty():
            log.warning("stdin is not a terminal: answers are read from it line by line")
        if settings.token and not settings.tls and not settings.server_is_loopback:
            log.warning(
                "the token travels in plain text to a remote core; use --tls",
                extra={"server": settings.server},
            )
        sys.exit(uvloop.run(serve(settings)))
    except (ConfigError, AuthError) as exc:
        print(f"asg-worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except WorkerError as exc:
        print(f"asg-worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(EXIT_FORCED)


if __name__ == "__main__":
    main()
