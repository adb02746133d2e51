"""`asg tasks watch --batch ID` and `asg jobs watch JOB`: live progress through the REST API.

A customer's tool like `asg jobs`: it polls the public API with the SDK. On a terminal the
board is a `rich` progress bar with the counts by status and the decided rate; on a pipe or a
log file it is one plain line per change, so scripts and CI logs read it too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from asg_grpc.cli import jobs

STATUSES = ("pending", "in_progress", "verified", "settled", "failed", "cancelled", "expired")
OPEN = "open"  # a job's tasks not decided yet: its counts do not split pending from in_progress


def counts_text(counts: Mapping[str, int]) -> str:
    """`pending 3 · verified 5`: the statuses that hold tasks, in the API's order."""
    return " · ".join(f"{name} {counts[name]}" for name in (OPEN, *STATUSES) if counts.get(name))


class Board:
    """Decided out of total, the rate since the first poll, and the counts by status."""

    def __init__(self, title: str, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._title = title
        self._out = out
        self._clock = clock
        self._console = Console(file=out)
        self._bar: Progress | None = None
        self._row: Any = None
        self._start: tuple[float, int] | None = None
        self._last: tuple[int, int, str] | None = None

    def rate(self, decided: int) -> float:
        """Tasks decided per second since this board first saw the batch."""
        now = self._clock()
        if self._start is None:
            self._start = (now, decided)
        since, first = self._start
        return (decided - first) / (now - since) if now > since else 0.0

    def update(self, total: int, decided: int, counts: Mapping[str, int]) -> None:
        rate, detail = self.rate(decided), counts_text(counts)
        if not self._console.is_terminal:
            if (total, decided, detail) != self._last:
                self._out.write(f"{self._title}: {decided}/{total} decided · {rate:.1f}/s · {detail}\n")
                self._out.flush()
            self._last = (total, decided, detail)
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("decided · {task.fields[rate]:.1f}/s · {task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._bar.start()
            self._row = self._bar.add_task(self._title, total=total, rate=rate, detail=detail)
        self._bar.update(self._row, total=total, completed=decided, rate=rate, detail=detail)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def batch_counts(batch: Mapping[str, Any]) -> tuple[int, int, Mapping[str, int]]:
    return batch["total"], batch["decided"], batch["counts"]


def job_counts(job: Mapping[str, Any]) -> tuple[int, int, Mapping[str, int]]:
    """A job's counts have the decided statuses only: the rest of its tasks are still open."""
    counts = job["counts"]
    total = counts["tasks_created"] + counts["tasks_reused"]
    decided = sum(counts[name] for name in STATUSES[2:])
    return total, decided, {**counts, OPEN: total - decided}


def watch_tasks(args: argparse.Namespace) -> int:
    board = Board(f"batch {args.batch}", sys.stderr)
    with jobs.api_client(args) as client:
        try:
            while True:
                batch = client.get_batch(args.batch)
                board.update(*batch_counts(batch))
                if batch["decided"] >= batch["total"]:
                    break
                time.sleep(args.interval)
        except KeyboardInterrupt:
            board.done()
            return jobs.INTERRUPTED
    board.done()
    total, decided, counts = batch_counts(batch)
    print(f"batch {args.batch}: {decided}/{total} decided: {counts_text(counts)}")
    return 0


def watch_job(args: argparse.Namespace) -> int:
    board = Board(f"job {args.job_id}", sys.stderr)
    with jobs.api_client(args) as client:
        try:
            job = client.wait_job(
                args.job_id,
                timeout=None,
                interval=args.interval,
                on_progress=lambda j: board.update(*job_counts(j)),
            )
        except KeyboardInterrupt:
            board.done()
            return jobs.INTERRUPTED
    board.done()
    print("\n".join(jobs.summary(job)))
    return 0 if job["status"] == "completed" else jobs.FAILED


def add_parsers(commands: argparse._SubParsersAction, job_actions: argparse._SubParsersAction) -> None:
    """`asg tasks watch` (its own command) and `asg jobs watch` (beside create/status/export)."""
    tasks = commands.add_parser("tasks", help="your tasks through the REST API")
    actions = tasks.add_subparsers(dest="action", required=True)
    batch = actions.add_parser(
        "watch",
        parents=[jobs.API_FLAGS],
        help="follow a batch until every task is decided",
        description="Exit code: 0 when every task of the batch is decided, 1 on an API error, "
        "2 usage error, 130 on Ctrl-C (the tasks go on).",
    )
    batch.add_argument(
        "--batch", required=True, metavar="ID", help="the batch_id POST /v1/tasks/batch returned"
    )
    batch.add_argument(
        "--interval", type=jobs.seconds, default=1.0, metavar="S", help="seconds between polls (1)"
    )
    batch.set_defaults(func=jobs.run("tasks watch", watch_tasks))

    job = job_actions.add_parser(
        "watch",
        parents=[jobs.API_FLAGS],
        help="follow a job until it completes or fails",
        description="Exit code: 0 completed, 1 failed, 2 usage error, 130 on Ctrl-C (the job goes on).",
    )
    job.add_argument("job_id", help="the job's id, job_…")
    job.add_argument(
        "--interval", type=jobs.seconds, default=1.0, metavar="S", help="seconds between polls (1)"
    )
    job.set_defaults(func=jobs.run("jobs watch", watch_job))
