"""`asg jobs` as a customer runs it: the installed console script against a real stack with
workers, reading manifests from a real S3-compatible server (moto) with the AWS variables.

The workers take only image_classification, so a job of another type stays labeling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack, register
from tests.manifest_servers import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server

ASG = str(Path(sys.executable).with_name("asg"))
VALID = 3
MANIFEST = (
    "\n".join(
        [
            *(
                json.dumps({"data_url": f"https://cdn.example.com/{i}.jpg", "metadata": {"n": i}})
                for i in range(VALID)
            ),
            json.dumps({"metadata": {"n": "no data_url"}}),
        ]
    )
    + "\n"
).encode()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_stack(tmp_path_factory.mktemp("jobs-cli")) as stack:
        stack.start_workers(3, "--task-types", "image_classification")
        yield stack


@pytest.fixture(scope="module")
def env(jobs_stack: Stack, s3: S3Server) -> dict[str, str]:
    """A customer's shell: API key and AWS variables, nothing else of ours or of AWS."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ASG_", "AWS_"))}
    return {
        **clean,
        "ASG_API_URL": jobs_stack.base_url,
        "ASG_API_KEY": str(register(jobs_stack.base_url)["api_key"]),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": s3.endpoint_url,
    }


@pytest.fixture(scope="module")
def manifest(s3: S3Server) -> str:
    return s3.put("manifests", "animals.jsonl", MANIFEST)


def asg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASG, "jobs", *args], capture_output=True, text=True, timeout=120, env=env)


def create_args(manifest: str, *extra: str) -> list[str]:
    return ["create", "--manifest", manifest, "--question", "Animal?", "--options", "cat,dog", *extra]


@pytest.fixture(scope="module")
def created(env: dict[str, str], manifest: str) -> subprocess.CompletedProcess[str]:
    return asg(env, *create_args(manifest, "--interval", "0.2"))


def test_create_follows_the_job_to_completion(created: subprocess.CompletedProcess[str]) -> None:
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    assert job_id.startswith("job_")
    assert f"job {job_id} completed" in created.stderr
    assert "4 lines read, 3 tasks" in created.stderr and "1 invalid lines" in created.stderr
    assert "line 4: data_url" in created.stderr
    # not a terminal: plain progress lines, no redrawing
    assert "decided" in created.stderr and "\r" not in created.stderr
    assert SECRET_ACCESS_KEY not in created.stdout + created.stderr


def test_export_has_one_row_per_valid_manifest_line(
    created: subprocess.CompletedProcess[str], env: dict[str, str], tmp_path: Path
) -> None:
    job_id = created.stdout.strip()
    out = tmp_path / "results.jsonl"
    written = asg(env, "export", job_id, "-o", str(out))
    assert written.returncode == 0, written.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["metadata"] for row in rows] == [{"n": i} for i in range(VALID)]
    assert all(row["status"] in ("verified", "settled") for row in rows)
    assert not (tmp_path / "results.jsonl.part").exists()
    printed = asg(env, "export", job_id)
    assert printed.returncode == 0 and [json.loads(line) for line in printed.stdout.splitlines()] == rows


def test_status_prints_the_job(created: subprocess.CompletedProcess[str], env: dict[str, str]) -> None:
    job_id = created.stdout.strip()
    shown = asg(env, "status", job_id)
    assert shown.returncode == 0 and f"job {job_id} completed" in shown.stdout
    as_json = json.loads(asg(env, "status", job_id, "--json").stdout)
    assert as_json["counts"]["tasks_created"] == VALID and as_json["status"] == "completed"


def test_a_missing_manifest_exits_1_with_the_reason(env: dict[str, str], s3: S3Server) -> None:
    s3.put("manifests", "other.jsonl", MANIFEST)  # the bucket exists, the key does not
    failed = asg(env, *create_args("s3://manifests/missing.jsonl", "--interval", "0.2"))
    assert failed.returncode == 1
    assert "failed" in failed.stderr and "NoSuchKey" in failed.stderr
    assert SECRET_ACCESS_KEY not in failed.stdout + failed.stderr


def test_no_wait_returns_the_id_and_export_refuses_until_completed(
    env: dict[str, str], manifest: str
) -> None:
    started = asg(env, *create_args(manifest, "--type", "sentiment", "--no-wait"))
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert job_id.startswith("job_") and "decided" not in started.stderr
    refused = asg(env, "export", job_id)
    assert refused.returncode == 1
    assert "ConflictError: 409" in refused.stderr and refused.stdout == ""


def test_usage_errors_exit_2(env: dict[str, str], manifest: str) -> None:
    no_secret = {k: v for k, v in env.items() if k != "AWS_SECRET_ACCESS_KEY"}
    done = asg(no_secret, *create_args(manifest))
    assert done.returncode == 2 and "AWS_SECRET_ACCESS_KEY" in done.stderr
    no_key = {k: v for k, v in env.items() if k != "ASG_API_KEY"}
    done = asg(no_key, *create_args(manifest))
    assert done.returncode == 2 and "ASG_API_KEY" in done.stderr
    one_option = asg(env, "create", "--manifest", manifest, "--question", "Q?", "--options", "cat")
    assert one_option.returncode == 2 and "BadRequestError" in one_option.stderr
    assert "options" in one_option.stderr and one_option.stdout == ""
    assert asg(env, "create", "--question", "Q?").returncode == 2


def test_on_a_terminal_the_bar_is_redrawn_in_place(env: dict[str, str], manifest: str) -> None:
    child = pexpect.spawn(ASG, ["jobs", *create_args(manifest, "--interval", "0.2")], env=env, timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before.decode()
    assert child.exitstatus == 0, shown
    assert "\r[" in shown and "\x1b[K" in shown and "completed" in shown
