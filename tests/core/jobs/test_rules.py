"""The job request's rules and the manifest line format (docs/jobs.md)."""

from __future__ import annotations

import orjson
import pytest

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.jobs import JobDraft, S3Credentials, parse_item, validate_job

CREDS = S3Credentials("AK", "SECRET", "us-east-1")


def draft(**changes: object) -> JobDraft:
    base: dict[str, object] = {
        "manifest_url": "s3://bucket-1/path/m.jsonl",
        "question": "Cat?",
        "options": ("yes", "no"),
        "has_label_spec": True,
        "s3_credentials": CREDS,
    }
    return JobDraft(**{**base, **changes})  # type: ignore[arg-type]


def refused(**changes: object) -> str:
    with pytest.raises(ValidationError) as info:
        validate_job(draft(**changes))
    return info.value.message


def test_defaults_are_applied() -> None:
    spec = validate_job(draft())
    assert (spec.task_type, spec.consensus_threshold, spec.callback_url) == ("image_classification", 3, None)
    assert spec.s3 is not None and (spec.s3.bucket, spec.s3.key) == ("bucket-1", "path/m.jsonl")
    https = validate_job(draft(manifest_url="https://cdn.example.com/m.jsonl", s3_credentials=None))
    assert https.s3 is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"manifest_url": None}, "manifest_url is required"),
        ({"manifest_url": "ftp://x/y"}, "manifest_url must be an s3://bucket/key or https:// URL"),
        ({"manifest_url": "http://x.example/y"}, "manifest_url must be an s3://bucket/key or https:// URL"),
        (
            {"manifest_url": "s3://Bad_Bucket/k"},
            "manifest_url must be s3://bucket/key with a valid bucket name",
        ),
        ({"manifest_url": "s3://bucket/"}, "manifest_url must be s3://bucket/key with a valid bucket name"),
        ({"has_label_spec": False}, "label_spec is required"),
        ({"options": ("one",)}, "label_spec.options must contain at least 2 entries"),
        ({"type": "video"}, "type must be one of"),
        ({"consensus_threshold": 11}, "consensus_threshold must be an integer from 2 to 10"),
        ({"callback_url": "http://hook.example"}, "callback_url must be an https URL"),
        ({"s3_credentials": None}, "s3_credentials is required for an s3:// manifest_url"),
        ({"s3_credentials": S3Credentials("", "s", "r")}, "s3_credentials.access_key_id is required"),
        ({"s3_credentials": S3Credentials("a", "s", "r", "ftp://x")}, "s3_credentials.endpoint_url must be"),
        (
            {"s3_credentials": S3Credentials("a", "s", "us east 1")},
            "s3_credentials.region must be a region name",
        ),
        (
            {"s3_credentials": S3Credentials("a", "s", "eu-west-1/x")},
            "s3_credentials.region must be a region",
        ),
        (
            {"s3_credentials": S3Credentials("a", "s", "r", "https://s3_host.example")},
            "s3_credentials.endpoint_url",
        ),
    ],
)
def test_a_broken_rule_names_its_field(changes: dict, message: str) -> None:
    assert refused(**changes).startswith(message)


RULE = (
    "manifest_url must be s3://bucket/key to be read with s3_credentials (an https:// manifest is"
    " fetched without credentials: then leave s3_credentials out)"
)


@pytest.mark.parametrize(
    ("url", "instead"),
    [
        ("https://bucket/manifest.jsonl", "s3://bucket/manifest.jsonl"),  # the seed's jobs example
        ("https://my-data.s3.amazonaws.com/in/m.jsonl", "s3://my-data/in/m.jsonl"),
        ("https://my-data.s3.eu-west-1.amazonaws.com/m.jsonl", "s3://my-data/m.jsonl"),
        ("https://s3.us-east-1.amazonaws.com/my-data/a/b.jsonl", "s3://my-data/a/b.jsonl"),
    ],
)
def test_credentials_with_an_https_manifest_say_which_s3_url_to_write(url: str, instead: str) -> None:
    assert refused(manifest_url=url) == f"{RULE}; for this one: {instead}"


def test_credentials_with_an_https_manifest_no_bucket_fits() -> None:
    assert refused(manifest_url="https://cdn.example.com/") == RULE
    assert refused(manifest_url="https://x/m.jsonl") == RULE  # a one-letter bucket name is no bucket


def test_the_secret_never_shows_in_a_repr() -> None:
    assert "SECRET" not in repr(CREDS) and "SECRET" not in repr(draft())


JOB = validate_job(draft(consensus_threshold=4))


def test_a_line_inherits_the_job_and_may_override_type_and_label_spec() -> None:
    item = parse_item(b'{"data_url": "https://img.example.com/1.jpg", "metadata": {"id": 7}}', JOB)
    assert (item.spec.task_type, item.spec.question, item.spec.consensus_threshold) == (
        "image_classification",
        "Cat?",
        4,
    )
    assert orjson.loads(item.metadata or "") == {"id": 7}
    line = {
        "data_url": "https://img.example.com/2.jpg",
        "type": "moderation",
        "label_spec": {"question": "Safe?", "options": ["y", "n", "?"]},
        "idempotency_key": "row-2",
    }
    item = parse_item(orjson.dumps(line), JOB)
    assert (item.spec.task_type, item.spec.options, item.spec.idempotency_key) == (
        "moderation",
        ("y", "n", "?"),
        "row-2",
    )
    assert item.metadata is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "line is not valid JSON"),
        (b"[1]", "line must be a JSON object"),
        (b'{"url": "https://x.example/1"}', "url is not a known field"),
        (b'{"type": "sentiment"}', "data_url is required"),
        (b'{"data_url": "http://x.example/1"}', "data_url must be an https URL"),
        (b'{"data_url": 5}', "data_url must be a string"),
        (b'{"data_url": "https://x.example/1", "metadata": [1]}', "metadata must be a JSON object"),
        (b'{"data_url": "https://x.example/1", "label_spec": {"options": ["a"]}}', "label_spec.question"),
        (b'{"data_url": "https://x.example/1", "idempotency_key": ""}', "idempotency_key must be 1 to 255"),
    ],
)
def test_a_bad_line_names_what_is_wrong(line: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_item(line, JOB)
    assert info.value.message.startswith(message)
