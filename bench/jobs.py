"""Batch jobs: manifest ingest rate from an S3-compatible server, and export rate.

Starts moto's standalone S3 server (`moto_server`, its own process) and the stack (core and
gateway processes, as `asg dev` does), uploads a `--lines` JSONL manifest with boto3, then:

* ingest: POST /v1/jobs and poll GET /v1/jobs/{id} every 50 ms until the job is `labeling`
  (every line read, parsed, validated and committed as a task); lines per second over that, and
  the core's peak resident memory before and after.
* export: starts `--workers` simulated labelers, waits for the job to complete (not timed),
  then times GET /v1/jobs/{id}/export read to the end through httpx, counting lines.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/jobs.py [--lines 100000] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import httpx
import orjson

from asg_grpc.devstack import Stack, free_addr

INGEST_TARGET = 20_000.0  # lines per second
# Label Studio exported 10,000 tasks in 10.7 s on this machine; the target is 50x that rate.
LABEL_STUDIO_RATE = 10_000 / 10.7
EXPORT_TARGET = 50 * LABEL_STUDIO_RATE
KEY_ID, SECRET, REGION = "AKIABENCH", "bench-secret", "us-east-1"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_moto(addr: str) -> subprocess.Popen[bytes]:
    moto = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if moto is None:
        sys.exit("moto_server not found: install the dev extras (make test does)")
    host, port = addr.split(":")
    proc = subprocess.Popen(
        [moto, "-H", host, "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://{addr}", timeout=1.0)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("moto_server did not start")
            time.sleep(0.1)


def manifest(lines: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {"data_url": f"https://img.example.com/{i}.jpg", "metadata": {"row": i, "split": "train"}}
        )
        + b"\n"
        for i in range(lines)
    )


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_job(http: httpx.Client, job_id: str, statuses: tuple[str, ...], interval: float) -> dict:
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--ingest-only", action="store_true", help="stop after ingestion (no export)")
    args = parser.parse_args()

    moto_addr = free_addr()
    moto = start_moto(moto_addr)
    endpoint = f"http://{moto_addr}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
        body = manifest(args.lines)
        s3.create_bucket(Bucket="bench")
        key = f"{uuid.uuid4().hex}.jsonl"
        s3.put_object(Bucket="bench", Key=key, Body=body)
        s3.close()
        progress(f"manifest: {args.lines} lines, {len(body)} bytes on moto at {endpoint}")
        with tempfile.TemporaryDirectory(prefix="asg-bench-jobs-") as tmp:
            stack = Stack(
                http_addr=free_addr(),
                grpc_addr=free_addr(),
                data_dir=Path(tmp) / "data",
                log_dir=Path(tmp) / "logs",
                env={"ASG_SANDBOX_LABEL_QUOTA": str(10 * args.lines)},
            )
            with stack, httpx.Client(base_url=stack.base_url, timeout=60.0) as http:
                email = f"{uuid.uuid4().hex[:10]}@bench.example"
                customer = http.post("/v1/customers", json={"name": "bench", "email": email}).json()
                http.headers["Authorization"] = f"Bearer {customer['api_key']}"
                core_pid = stack.procs["core"].pid
                rss_before = peak_rss_mib(core_pid)
                started = time.perf_counter()
                reply = http.post(
                    "/v1/jobs",
                    json={
                        "manifest_url": f"s3://bench/{key}",
                        "label_spec": {"question": "Cat?", "options": ["yes", "no"]},
                        "consensus_threshold": 2,
                        "s3_credentials": {
                            "access_key_id": KEY_ID,
                            "secret_access_key": SECRET,
                            "region": REGION,
                            "endpoint_url": endpoint,
                        },
                    },
                )
                reply.raise_for_status()
                job_id = reply.json()["job_id"]
                job = wait_job(http, job_id, ("labeling", "completed", "failed"), 0.05)
                ingest_seconds = time.perf_counter() - started
                if job["counts"]["tasks_created"] != args.lines:
                    sys.exit(f"ingestion did not create every task: {job}")
                ingest_rate = args.lines / ingest_seconds
                rss_after = peak_rss_mib(core_pid)
                progress(f"ingested in {ingest_seconds:.2f} s ({ingest_rate:,.0f} lines/s); labeling")

                if args.ingest_only:
                    print(
                        json.dumps(
                            {
                                "bench": "jobs-ingest",
                                "lines": args.lines,
                                "seconds": round(ingest_seconds, 3),
                                "ingest_lines_per_second": round(ingest_rate, 1),
                                "core_peak_rss_mib_before": round(rss_before, 1),
                                "core_peak_rss_mib_after_ingest": round(rss_after, 1),
                            }
                        )
                    )
                    return
                stack.start_workers(args.workers)
                job = wait_job(http, job_id, ("completed", "failed"), 0.5)
                if job["status"] != "completed":
                    sys.exit(f"the job did not complete: {job}")
                progress("completed; exporting")
                started = time.perf_counter()
                exported = 0
                size = 0
                with http.stream("GET", f"/v1/jobs/{job_id}/export") as stream:
                    stream.raise_for_status()
                    for chunk in stream.iter_bytes():
                        exported += chunk.count(b"\n")
                        size += len(chunk)
                export_seconds = time.perf_counter() - started
    finally:
        moto.terminate()
        moto.wait()
    export_rate = exported / export_seconds
    print(
        json.dumps(
            {
                "bench": "jobs",
                "lines": args.lines,
                "manifest_bytes": len(body),
                "ingest_seconds": round(ingest_seconds, 3),
                "ingest_lines_per_second": round(ingest_rate, 1),
                "ingest_target_per_second": INGEST_TARGET,
                # The core's peak RSS before the job and after ingesting it: the manifest is
                # streamed, so the growth stays far below its size.
                "core_peak_rss_mib_before": round(rss_before, 1),
                "core_peak_rss_mib_after_ingest": round(rss_after, 1),
                "exported_tasks": exported,
                "export_bytes": size,
                "export_seconds": round(export_seconds, 3),
                "export_tasks_per_second": round(export_rate, 1),
                "export_target_per_second": round(EXPORT_TARGET, 1),
                "export_vs_label_studio": round(export_rate / LABEL_STUDIO_RATE, 1),
                "meets_target": ingest_rate >= INGEST_TARGET
                and export_rate >= EXPORT_TARGET
                and exported == args.lines,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
