"""`asg jobs`: create a batch job from a manifest and follow it, read its status, export it.

A customer's tool, unlike the rest of `asg`: it talks to the REST API through the SDK
(`asg_gateway`), never to the core, so it works against any deployment with an API key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from asg_gateway import ASGError, ASGGatewayClient, BadRequestError
from asg_grpc.settings import recorded_stack

USAGE = 2  # argparse's exit code for a bad command line; ours for every usage error
FAILED = 1
INTERRUPTED = 130
SHOWN_ERRORS = 5  # line errors printed under a summary; GET /v1/jobs/{id} has the first 100
BAR_WIDTH = 24
PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class UsageError(Exception):
    """A command line we can refuse before calling the API; exits 2."""


def api_client(args: argparse.Namespace) -> ASGGatewayClient:
    api_key = args.api_key or os.environ.get("ASG_API_KEY")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set ASG_API_KEY")
    return ASGGatewayClient(api_key, api_url(args.api_url, os.environ))


def api_url(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--api-url, ASG_API_URL, the SDK's ASG_BASE_URL, the stack `asg dev` recorded (docs/cli.md);
    None lets the SDK use its default, http://localhost:8081."""
    recorded = recorded_stack(env).get("http_addr")
    return (
        flag
        or env.get("ASG_API_URL")
        or env.get("ASG_BASE_URL")
        or (f"http://{recorded}" if recorded else None)
    )


def run(name: str, command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn usage errors and the SDK's errors into a message on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except UsageError as exc:
            print(f"asg {name}: {exc}", file=sys.stderr)
            return USAGE
        except ASGError as exc:
            print(f"asg {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            # A 400 names the argument the API refused: the command line was wrong.
            return USAGE if isinstance(exc, BadRequestError) else FAILED

    return run


def s3_credentials(
    manifest_url: str, region: str | None, endpoint_url: str | None, env: Mapping[str, str]
) -> dict[str, str] | None:
    """The `s3_credentials` of POST /v1/jobs from the standard AWS variables; flags win.

    None for an https:// manifest, which the API refuses credentials for.
    """
    if not manifest_url.startswith("s3://"):
        if region or endpoint_url:
            raise UsageError("--region and --endpoint-url are for s3:// manifests only")
        return None
    missing = [name for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(name)]
    if missing:
        raise UsageError(f"an s3:// manifest needs credentials: set {' and '.join(missing)}")
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError("an s3:// manifest needs a region: pass --region or set AWS_REGION")
    if env.get("AWS_SESSION_TOKEN"):
        # The API stores long-lived keys only; a session token cannot be passed on.
        print("asg jobs create: warning: AWS_SESSION_TOKEN is not sent (not supported)", file=sys.stderr)
    credentials = {
        "access_key_id": env["AWS_ACCESS_KEY_ID"],
        "secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region": region,
    }
    endpoint_url = endpoint_url or env.get("AWS_ENDPOINT_URL")
    if endpoint_url:
        credentials["endpoint_url"] = endpoint_url
    return credentials


def _tasks(counts: Mapping[str, int]) -> int:
    return counts["tasks_created"] + counts["tasks_reused"]


def _decided(counts: Mapping[str, int]) -> int:
    return sum(counts[name] for name in ("verified", "settled", "failed", "cancelled", "expired"))


def progress_line(job: Mapping[str, Any]) -> str:
    """`[#####·····]  3/10 decided · 12 lines read · 10 tasks · 2 invalid · labeling`."""
    counts = job["counts"]
    tasks, decided = _tasks(counts), _decided(counts)
    filled = BAR_WIDTH * decided // tasks if tasks else 0
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (
        f"[{bar}] {decided}/{tasks} decided · {counts['lines']} lines read · "
        f"{counts['tasks_created']} tasks created · {counts['invalid_lines']} invalid · {job['status']}"
    )


class Progress:
    """Draws `progress_line` on `out`: redrawn in place on a terminal; on a pipe or a log file,
    a plain line when the status changes and at most every PLAIN_EVERY s otherwise."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._tty = out.isatty()
        self._clock = clock
        self._last_line = ""
        self._last_status: str | None = None
        self._last_time = -PLAIN_EVERY
        self._drawn = False

    def __call__(self, job: Mapping[str, Any]) -> None:
        line = progress_line(job)
        if self._tty:
            self._out.write(f"\r{line}\x1b[K")
            self._drawn = True
        elif job["status"] != self._last_status or (
            line != self._last_line and self._clock() - self._last_time >= PLAIN_EVERY
        ):
            self._out.write(line + "\n")
            self._last_time = self._clock()
        self._last_line, self._last_status = line, job["status"]
        self._out.flush()

    def done(self) -> None:
        """End the redrawn line so that what follows starts on its own."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()


def summary(job: Mapping[str, Any]) -> Iterator[str]:
    """What a person reads when a job ends (or asks for its status)."""
    counts = job["counts"]
    yield (
        f"job {job['job_id']} {job['status']}: {counts['lines']} lines read, {_tasks(counts)} tasks "
        f"({counts['tasks_created']} created, {counts['tasks_reused']} reused), "
        f"{counts['invalid_lines']} invalid lines"
    )
    yield (
        f"  decided {_decided(counts)}/{_tasks(counts)}: {counts['verified']} verified, "
        f"{counts['settled']} settled, {counts['failed']} failed, {counts['cancelled']} cancelled,"
        f" {counts['expired']} expired"
    )
    if job.get("failure_reason"):
        yield f"  reason: {job['failure_reason']}"
    errors = job.get("errors") or []
    for error in errors[:SHOWN_ERRORS]:
        yield f"  line {error['line']}: {error['error']}"
    more = counts["invalid_lines"] - min(len(errors), SHOWN_ERRORS)
    if more > 0:
        yield f"  … and {more} more invalid lines (asg jobs status {job['job_id']} --json lists 100)"


def create(args: argparse.Namespace) -> int:
    options = [o.strip() for o in args.options.split(",") if o.strip()]
    credentials = s3_credentials(args.manifest, args.region, args.endpoint_url, os.environ)
    with api_client(args) as client:
        created = client.create_job(
            args.manifest,
            {"question": args.question, "options": options},
            task_type=args.type,
            consensus_threshold=args.threshold,
            callback_url=args.callback_url,
            s3_credentials=credentials,
        )
        job_id = created["job_id"]
        print(job_id, flush=True)
        if args.no_wait:
            return 0
        progress = Progress(sys.stderr)
        try:
            job = client.wait_job(job_id, timeout=None, interval=args.interval, on_progress=progress)
        except KeyboardInterrupt:
            progress.done()
            print(f"stopped waiting; the job goes on: asg jobs status {job_id}", file=sys.stderr)
            return INTERRUPTED
        progress.done()
    for line in summary(job):
        print(line, file=sys.stderr)
    if job["status"] != "completed":
        return FAILED
    print(f"results: asg jobs export {job_id} -o results.jsonl", file=sys.stderr)
    return 0


def status(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        job = client.get_job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary(job)))
    return 0


def export(args: argparse.Namespace) -> int:
    with api_client(args) as client, client.export_job(args.job_id) as rows:
        if args.output is None:
            try:
                _write(rows, sys.stdout)
            except BrokenPipeError:
                # `asg jobs export … | head`: the reader has what it wanted.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        # Written aside and renamed at the end: a broken export never looks like a whole one.
        target = Path(args.output)
        partial = target.with_name(target.name + ".part")
        try:
            with partial.open("w", encoding="utf-8") as out:
                count = _write(rows, out)
            partial.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    print(f"{count} rows written to {target}", file=sys.stderr)
    return 0


def _write(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    out.flush()
    return count


def seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


# --api-url and --api-key, shared by every command that talks to the REST API.
API_FLAGS = argparse.ArgumentParser(add_help=False)
API_FLAGS.add_argument(
    "--api-url",
    metavar="URL",
    help="REST API (ASG_API_URL, ASG_BASE_URL, as `asg dev` recorded, localhost:8081)",
)
API_FLAGS.add_argument("--api-key", metavar="KEY", help="API key (ASG_API_KEY)")


def add_parser(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """`asg jobs …`; returns its actions so that `asg jobs watch` (cli/watch.py) joins them."""
    jobs = commands.add_parser("jobs", help="batch jobs over a manifest, through the REST API")
    actions = jobs.add_subparsers(dest="action", required=True)

    new = actions.add_parser(
        "create",
        parents=[API_FLAGS],
        help="create a job and follow it to the end",
        description="S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_REGION (or AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL. Exit code: 0 completed, "
        "1 failed, 2 usage error.",
    )
    new.add_argument("--manifest", required=True, metavar="URL", help="s3://bucket/key or https://…")
    new.add_argument("--question", required=True, help="the question of lines that carry no label_spec")
    new.add_argument("--options", required=True, metavar="A,B,…", help="comma-separated label options")
    new.add_argument("--type", help="task type (the API's default: image_classification)")
    new.add_argument("--threshold", type=int, metavar="N", help="consensus threshold, 2-10 (default 3)")
    new.add_argument("--callback-url", metavar="URL", help="a registered webhook for the job's events")
    new.add_argument("--region", help="S3 region (AWS_REGION, AWS_DEFAULT_REGION)")
    new.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint (AWS_ENDPOINT_URL)")
    new.add_argument("--no-wait", action="store_true", help="print the job id and return")
    new.add_argument("--interval", type=seconds, default=1.0, metavar="S", help="seconds between polls (1)")
    new.set_defaults(func=run("jobs create", create))

    show = actions.add_parser("status", parents=[API_FLAGS], help="a job's status, counts and errors")
    show.add_argument("job_id", help="the job's id, job_… (printed by `asg jobs create`)")
    show.add_argument("--json", action="store_true", help="the API's JSON as it is")
    show.set_defaults(func=run("jobs status", status))

    out = actions.add_parser("export", parents=[API_FLAGS], help="a completed job's results as JSONL")
    out.add_argument("job_id", help="the completed job's id, job_…")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE rather than stdout")
    out.set_defaults(func=run("jobs export", export))
    return actions
