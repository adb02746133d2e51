"""Batch jobs through the REST API against real processes: the core, the gateway, simulated
labelers, moto's S3 server and an HTTPS manifest server."""

from __future__ import annotations

import gzip
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from asg_grpc.devstack import Stack
from tests.conftest import make_stack
from tests.core.jobs.conftest import UNLABELED_TYPE, Client, jsonl, manifest, read_core_files
from tests.core.webhooks.receiver import Receiver
from tests.manifest_servers import SECRET_ACCESS_KEY, HttpsManifestServer, S3Server

DONE = ("completed", "failed")


@pytest.fixture
def client(jobs_stack: Stack) -> Iterator[Client]:
    with Client(jobs_stack) as c:
        yield c


def s3_job(client: Client, s3: S3Server, body: bytes, **fields: object) -> str:
    url = s3.put("manifests", f"{uuid.uuid4().hex}.jsonl", body)
    return client.create_ok(manifest_url=url, s3_credentials=s3.credentials(), **fields)


def test_an_s3_manifest_becomes_labeled_tasks_and_an_export_in_manifest_order(
    client: Client, s3: S3Server
) -> None:
    lines = manifest(40)
    lines.insert(5, b'{"data_url": "http://insecure.example/x.jpg"}')  # line 6
    lines.insert(12, b"")  # line 13: blank, skipped
    lines.insert(20, b"{not json")  # line 21
    job_id = s3_job(client, s3, jsonl(lines))

    job = client.wait_status(job_id, *DONE)
    assert job["status"] == "completed", job
    assert job["counts"] == {
        "lines": 43,
        "tasks_created": 40,
        "tasks_reused": 0,
        "invalid_lines": 2,
        "verified": 0,
        "settled": 40,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert job["errors"] == [
        {"line": 6, "error": "data_url must be an https URL"},
        {"line": 21, "error": "line is not valid JSON"},
    ]
    assert job["completed_at"] is not None and job["failure_reason"] is None

    rows = client.export(job_id)
    assert [r["metadata"] for r in rows] == [{"row": i} for i in range(40)]
    assert [r["data_url"] for r in rows] == [f"https://img.example.com/{i}.jpg" for i in range(40)]
    for row in rows:
        assert set(row) == {
            "task_id",
            "data_url",
            "metadata",
            "status",
            "consensus_label",
            "confidence",
            "worker_count",
            "agreement_count",
            "bsv_txid",
        }
        assert row["status"] == "settled" and row["consensus_label"] in ("yes", "no")
        assert re.fullmatch(r"[0-9a-f]{64}", row["bsv_txid"])
        assert row["worker_count"] == 3 and row["confidence"] == row["agreement_count"] / 3
        result = client.http.get(f"/v1/tasks/{row['task_id']}/result").json()
        assert (result["consensus_label"], result["confidence"]) == (
            row["consensus_label"],
            row["confidence"],
        )
    listed = client.http.get("/v1/tasks", params={"batch_id": job_id, "limit": 200}).json()["tasks"]
    assert {t["task_id"] for t in listed} == {r["task_id"] for r in rows}


def test_an_https_manifest_with_per_line_types_and_label_specs(
    client: Client, https_manifests: HttpsManifestServer
) -> None:
    typed = {
        "data_url": "https://img.example.com/s.jpg",
        "type": "sentiment",
        "label_spec": {"question": "Tone?", "options": ["good", "bad", "meh"]},
    }
    lines = [*manifest(3), orjson.dumps(typed)]
    https_manifests.files["typed.jsonl"] = jsonl(lines)
    job_id = client.create_ok(manifest_url=https_manifests.url("typed.jsonl"), consensus_threshold=2)
    job = client.wait_status(job_id, *DONE)
    assert (job["status"], job["counts"]["tasks_created"], job["consensus_threshold"]) == ("completed", 4, 2)
    last = client.export(job_id)[-1]
    task = client.http.get(f"/v1/tasks/{last['task_id']}").json()
    assert task["task_type"] == "sentiment" and task["label_spec"]["options"] == ["good", "bad", "meh"]
    assert task["consensus_threshold"] == 2 and last["consensus_label"] in ("good", "bad", "meh")


def test_a_challenge_job_gives_every_task_its_labor_and_with_no_gateway_completes_failed(
    client: Client, https_manifests: HttpsManifestServer
) -> None:
    """docs/jobs.md: `labor` is every task's. The stack's labelers are plain workers, so no
    challenge gateway could ever label them: each task fails (`no_challenge_gateway`, not
    charged) and the job completes instead of waiting for ever (docs/labeling.md)."""
    https_manifests.files["opted.jsonl"] = jsonl(manifest(3))
    job_id = client.create_ok(manifest_url=https_manifests.url("opted.jsonl"), labor="challenge")
    job = client.wait_status(job_id, *DONE)
    assert (job["status"], job["labor"], job["counts"]["failed"]) == ("completed", "challenge", 3), job
    for row in client.export(job_id):
        assert (row["status"], row["worker_count"]) == ("failed", 0)
        assert client.http.get(f"/v1/tasks/{row['task_id']}").json()["labor"] == "challenge"
        result = client.http.get(f"/v1/tasks/{row['task_id']}/result").json()
        assert result["failure_reason"] == "no_challenge_gateway"
    listed = client.http.get("/v1/jobs").json()["jobs"]
    assert next(j for j in listed if j["job_id"] == job_id)["labor"] == "challenge"


def test_the_export_is_409_until_the_job_completes_and_jobs_are_private(
    client: Client, s3: S3Server, jobs_stack: Stack
) -> None:
    job_id = s3_job(client, s3, jsonl(manifest(3)), type=UNLABELED_TYPE)
    client.wait_status(job_id, "labeling")
    reply = client.http.get(f"/v1/jobs/{job_id}/export")
    assert reply.status_code == 409
    assert reply.json() == {
        "error": f"job {job_id} is labeling; the export is available once it is completed"
    }
    with Client(jobs_stack) as stranger:
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/export"):
            reply = stranger.http.get(path)
            assert (reply.status_code, reply.json()) == (404, {"error": "job not found"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"manifest_url": None}, "manifest_url is required"),
        (
            {"manifest_url": "ftp://files.example/m.jsonl"},
            "manifest_url must be an s3://bucket/key or https:// URL",
        ),
        ({"manifest_url": "s3://bucket/m.jsonl"}, "s3_credentials is required for an s3:// manifest_url"),
        ({"manifest_url": "https://cdn.example/m", "label_spec": None}, "label_spec is required"),
        ({"manifest_url": "https://cdn.example/m", "priority": 1}, "priority is not a known field"),
        (
            {"manifest_url": "s3://bucket/m", "s3_credentials": {"access_key_id": "a", "region": "r"}},
            "s3_credentials.secret_access_key is required",
        ),
        (
            {"manifest_url": "s3://bucket/m", "s3_credentials": {"access_key_id": 1}},
            "s3_credentials.access_key_id must be a string",
        ),
        (
            {
                "manifest_url": "https://cdn.example/m",
                "callback_url": "https://hooks.example/never-registered",
            },
            'callback_url is not a registered webhook; register it first: POST /v1/webhooks {"callback_url":'
            ' "<this URL>", "secret": "<8 to 256 characters>"} (docs/webhooks.md)',
        ),
        (
            {"manifest_url": "https://cdn.example/m", "consensus_threshold": "3"},
            "consensus_threshold must be an integer",
        ),
        ({"manifest_url": "https://cdn.example/m", "labor": "robots"}, "labor must be one of any, challenge"),
    ],
)
def test_a_bad_request_is_400_naming_the_field(client: Client, body: dict, error: str) -> None:
    reply = client.create(**body)
    assert reply.status_code == 400, reply.text
    assert reply.json() == {"error": error}


def test_the_seeds_jobs_example_is_told_to_write_s3_and_then_works_against_a_real_s3(
    client: Client, s3: S3Server
) -> None:
    # Seed 002's body as printed: an https:// URL with s3_credentials.
    seed = {
        "manifest_url": "https://bucket/manifest.jsonl",
        "label_spec": {"question": "Q", "options": ["a", "b"]},
        "s3_credentials": {"access_key_id": "x", "secret_access_key": "y", "region": "us-east-1"},
    }
    reply = client.http.post("/v1/jobs", json=seed)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "manifest_url must be s3://bucket/key to be read with s3_credentials (an https://"
        " manifest is fetched without credentials: then leave s3_credentials out); for this one:"
        " s3://bucket/manifest.jsonl"
    }
    # Written as told, it is read with SigV4 from the S3-compatible server (moto, over HTTP).
    s3.put("bucket", "manifest.jsonl", jsonl(manifest(2)))
    fixed = {**seed, "manifest_url": "s3://bucket/manifest.jsonl", "s3_credentials": s3.credentials()}
    job_id = client.create_ok(**fixed)
    job = client.wait_status(job_id, "labeling", *DONE)
    assert job["counts"]["tasks_created"] == 2


def test_s3_credentials_are_never_returned_logged_or_stored_in_plain_text(
    client: Client, s3: S3Server, jobs_stack: Stack
) -> None:
    job_id = s3_job(client, s3, jsonl(manifest(5)))
    job = client.wait_status(job_id, *DONE)
    assert job["status"] == "completed"
    assert SECRET_ACCESS_KEY not in orjson.dumps(job).decode()
    assert SECRET_ACCESS_KEY.encode() not in read_core_files(jobs_stack.data_dir)
    assert jobs_stack.log_dir is not None
    for log in jobs_stack.log_dir.glob("*.log"):
        assert SECRET_ACCESS_KEY not in log.read_text(), log.name
    with sqlite3.connect(jobs_stack.data_dir / "asg.sqlite3") as db:
        [(sealed,)] = db.execute("SELECT sealed_credentials FROM jobs WHERE job_id = ?", (job_id,))
    assert sealed is None, "credentials are erased once the manifest is read"


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing-key", "s3://manifests/no-such.jsonl could not be read: S3 answered NoSuchKey"),
        ("missing-bucket", "s3://no-such-bucket/m.jsonl could not be read: S3 answered NoSuchBucket"),
    ],
)
def test_an_unreadable_s3_manifest_fails_the_job_with_the_reason(
    client: Client, s3: S3Server, where: str, reason: str
) -> None:
    s3.put("manifests", "exists.jsonl", b"")
    url = "s3://manifests/no-such.jsonl" if where == "missing-key" else "s3://no-such-bucket/m.jsonl"
    job_id = client.create_ok(manifest_url=url, s3_credentials=s3.credentials())
    job = client.wait_status(job_id, *DONE)
    assert (job["status"], job["failure_reason"]) == ("failed", reason)
    reply = client.http.get(f"/v1/jobs/{job_id}/export")
    assert reply.status_code == 409 and "failed" in reply.json()["error"]


def test_an_https_manifest_answering_404_fails_the_job(
    client: Client, https_manifests: HttpsManifestServer
) -> None:
    job_id = client.create_ok(manifest_url=https_manifests.url("nothing-here.jsonl"))
    job = client.wait_status(job_id, *DONE)
    assert (job["status"], job["failure_reason"]) == ("failed", "manifest_url answered HTTP 404")


def test_a_compressed_https_manifest_fails_rather_than_resuming_at_wrong_offsets(
    client: Client, https_manifests: HttpsManifestServer
) -> None:
    """Offsets count stored bytes; a body unzipped on the fly would make a resumed Range land
    elsewhere and lose lines silently, so a compressed manifest is refused up front."""
    https_manifests.files["zipped.jsonl"] = gzip.compress(jsonl(manifest(10)))
    https_manifests.encodings["zipped.jsonl"] = "gzip"
    job_id = client.create_ok(manifest_url=https_manifests.url("zipped.jsonl"))
    job = client.wait_status(job_id, *DONE)
    assert (job["status"], job["failure_reason"]) == (
        "failed",
        "manifest_url is served with Content-Encoding gzip: serve it uncompressed",
    )


def test_empty_and_all_invalid_manifests_fail_with_a_clear_reason(client: Client, s3: S3Server) -> None:
    empty = s3_job(client, s3, b"")
    invalid = s3_job(client, s3, b"1\n2\n")
    assert client.wait_status(empty, *DONE)["failure_reason"] == "the manifest is empty"
    job = client.wait_status(invalid, *DONE)
    assert job["failure_reason"] == "the manifest has no valid lines (see errors)"
    assert job["errors"] == [{"line": n, "error": "line must be a JSON object"} for n in (1, 2)]


def test_bad_lines_are_counted_all_and_the_first_hundred_kept_while_the_job_goes_on(
    client: Client, s3: S3Server
) -> None:
    lines = []
    for i in range(150):
        lines.append(orjson.dumps({"data_url": f"ftp://bad.example/{i}"}))
        lines.append(orjson.dumps({"data_url": f"https://img.example.com/ok-{i}.jpg"}))
    too_long = orjson.dumps({"data_url": "https://img.example.com/" + "x" * 70_000})
    lines += [
        too_long,  # line 301
        orjson.dumps({"data_url": "https://img.example.com/k.jpg", "idempotency_key": "k-1"}),  # 302
        orjson.dumps({"data_url": "https://img.example.com/k.jpg", "idempotency_key": "k-1"}),  # 303
    ]
    job_id = s3_job(client, s3, jsonl(lines), type=UNLABELED_TYPE)
    job = client.wait_status(job_id, "labeling", "failed")
    assert job["status"] == "labeling"
    assert job["counts"]["invalid_lines"] == 152 and job["counts"]["tasks_created"] == 151
    assert len(job["errors"]) == 100
    assert job["errors"][0] == {"line": 1, "error": "data_url must be an https URL"}
    assert [e["line"] for e in job["errors"]] == list(range(1, 200, 2))


def test_a_later_line_repeating_an_idempotency_key_is_reported_even_across_chunks(
    client: Client, s3: S3Server
) -> None:
    first = orjson.dumps({"data_url": "https://img.example.com/a.jpg", "idempotency_key": "dup"})
    lines = [first, *manifest(1500), first]  # the repeat lands in a later chunk than the first
    job_id = s3_job(client, s3, jsonl(lines), type=UNLABELED_TYPE)
    job = client.wait_status(job_id, "labeling", "failed")
    assert job["counts"]["tasks_created"] == 1501
    assert job["errors"] == [{"line": 1502, "error": "idempotency_key repeats line 1"}]


def test_idempotency_keys_reuse_the_tasks_of_an_earlier_job(client: Client, s3: S3Server) -> None:
    lines = [
        orjson.dumps({"data_url": f"https://img.example.com/{i}.jpg", "idempotency_key": f"row-{i}"})
        for i in range(5)
    ]
    first = s3_job(client, s3, jsonl(lines), type=UNLABELED_TYPE)
    client.wait_status(first, "labeling")
    changed = orjson.dumps({"data_url": "https://img.example.com/other.jpg", "idempotency_key": "row-4"})
    second = s3_job(client, s3, jsonl([*lines[:4], changed]), type=UNLABELED_TYPE)
    job = client.wait_status(second, "labeling")
    assert (job["counts"]["tasks_created"], job["counts"]["tasks_reused"]) == (0, 4)
    assert job["errors"] == [{"line": 5, "error": "idempotency_key was already used for a different task"}]
    listed = client.http.get("/v1/tasks", params={"batch_id": first}).json()["tasks"]
    assert len(listed) == 5


def test_job_events_are_delivered_with_the_job_as_data(
    client: Client, s3: S3Server, https_manifests: HttpsManifestServer
) -> None:
    receiver = Receiver(https_manifests.cert, https_manifests.key).start()
    try:
        reply = client.http.post(
            "/v1/webhooks", json={"callback_url": receiver.url, "secret": "whsec_jobs_test"}
        )
        assert reply.status_code == 201, reply.text
        job_id = s3_job(client, s3, jsonl(manifest(2)), callback_url=receiver.url)
        client.wait_status(job_id, *DONE)
        failed_id = client.create_ok(
            manifest_url=https_manifests.url("gone.jsonl"), callback_url=receiver.url
        )
        client.wait_status(failed_id, *DONE)
        deadline_count = 6  # task.verified ×2, task.settled ×2, job.completed, job.failed
        events = [orjson.loads(r.body) for r in receiver.wait_for(deadline_count, timeout=30)]
    finally:
        receiver.stop()
    by_type = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    [completed] = by_type["job.completed"]
    [failed] = by_type["job.failed"]
    assert completed["data"] == client.job(job_id)
    assert failed["data"]["job_id"] == failed_id and failed["data"]["status"] == "failed"
    assert failed["data"]["failure_reason"] == "manifest_url answered HTTP 404"
    assert len(by_type["task.verified"]) == 2 and len(by_type["task.settled"]) == 2


def test_private_manifest_addresses_are_refused_unless_allowed(tmp_path: Path, s3: S3Server) -> None:
    with make_stack(tmp_path, ASG_ALLOW_PRIVATE_URLS="0") as stack, Client(stack) as client:
        reply = client.create(manifest_url="https://127.0.0.1:9/m.jsonl")
        assert (reply.status_code, reply.json()) == (
            400,
            {"error": "manifest_url resolves to a private or loopback address (127.0.0.1)"},
        )
        reply = client.create(manifest_url="s3://manifests/m.jsonl", s3_credentials=s3.credentials())
        assert reply.status_code == 400
        assert reply.json()["error"].startswith(
            "s3_credentials.endpoint_url resolves to a private or loopback address"
        )


def test_quota_stops_a_job_at_the_line_that_does_not_fit_and_the_size_limit_holds(
    tmp_path: Path, s3: S3Server
) -> None:
    with (
        make_stack(tmp_path, ASG_SANDBOX_LABEL_QUOTA="30", ASG_MANIFEST_MAX_BYTES="4000") as stack,
        Client(stack) as client,
    ):
        big = s3.put("manifests", f"{uuid.uuid4().hex}.jsonl", jsonl(manifest(200)))
        job_id = client.create_ok(manifest_url=big, s3_credentials=s3.credentials())
        job = client.wait_status(job_id, *DONE)
        assert (job["status"], job["failure_reason"]) == (
            "failed",
            "the manifest is larger than the limit of 4000 bytes",
        )
        assert job["counts"]["tasks_created"] == 0

        url = s3.put("manifests", f"{uuid.uuid4().hex}.jsonl", jsonl(manifest(25)))
        job_id = client.create_ok(manifest_url=url, s3_credentials=s3.credentials())
        job = client.wait_status(job_id, *DONE)
        assert job["status"] == "failed"
        assert job["failure_reason"].startswith(
            "quota exhausted at line 11: 10 tasks were created and are kept"
        )
        # With the numbers at the line that stopped it, and the way out.
        assert "3 labels requested, 0 of 30 left;" in job["failure_reason"]
        assert "asg customer tier cust_" in job["failure_reason"]
        assert (job["counts"]["tasks_created"], job["counts"]["lines"]) == (10, 10)
        listed = client.http.get("/v1/tasks", params={"batch_id": job_id}).json()["tasks"]
        assert len(listed) == 10
        assert client.http.get("/v1/customers/me").json()["quota_remaining"] == 0
        reply = client.create(manifest_url=url, s3_credentials=s3.credentials())
        assert reply.status_code == 403
        body = reply.json()
        # A job needs room for its first task (3 labels) to start.
        assert {k: body[k] for k in ("error", "limit", "used", "requested")} == {
            "error": "quota exhausted",
            "limit": 30,
            "used": 30,
            "requested": 3,
        }
        assert "asg customer tier cust_" in body["hint"]


def test_jobs_are_listed_newest_first_in_pages(
    jobs_stack: Stack, https_manifests: HttpsManifestServer
) -> None:
    with Client(jobs_stack) as client:
        https_manifests.files["list.jsonl"] = jsonl(manifest(1))
        ids = [client.create_ok(manifest_url=https_manifests.url("list.jsonl")) for _ in range(3)]
        first = client.http.get("/v1/jobs", params={"limit": 2}).json()
        assert [j["job_id"] for j in first["jobs"]] == ids[:0:-1]
        rest = client.http.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert ([j["job_id"] for j in rest["jobs"]], rest["next_cursor"]) == ([ids[0]], None)
        summary = first["jobs"][0]
        assert set(summary["counts"]) == {"lines", "tasks_created", "tasks_reused", "invalid_lines"}
        assert "errors" not in summary and summary["label_spec"]["options"] == ["yes", "no"]
        reply = client.http.get("/v1/jobs", params={"cursor": "job_not_mine"})
        assert (reply.status_code, reply.json()) == (
            400,
            {"error": "cursor is not a cursor this API returned"},
        )
