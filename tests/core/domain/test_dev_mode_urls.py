"""Development mode's one URL rule (asg_grpc/domain/urls.py): webhook, callback and manifest URLs
may be http:// to a loopback host with it, and only https without it; data_url stays https."""

from __future__ import annotations

from dataclasses import replace

import pytest

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.jobs import JobDraft, validate_job
from asg_grpc.domain.tasks import TaskDraft, validate_batch, validate_task
from asg_grpc.domain.urls import is_loopback_host, parse_call_url
from asg_grpc.domain.webhooks import validate_webhook

DRAFT = TaskDraft(
    type="image_classification",
    data_url="https://cdn.example.com/a.jpg",
    question="Animal?",
    options=("cat", "dog"),
    has_label_spec=True,
)
LOOPBACK = ["http://127.0.0.1:8099/hook", "http://localhost/hook", "http://[::1]:9000/h", "http://127.9.0.1/"]
ELSEWHERE = [
    "http://10.0.0.1/hook",
    "http://example.com/hook",
    "http://[::2]/h",
    "http://localhost.example.com/",
]


def job(url: str, callback_url: str | None = None) -> JobDraft:
    return JobDraft(
        manifest_url=url, question="Q", options=("a", "b"), has_label_spec=True, callback_url=callback_url
    )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.255.0.7", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["localhost.example.com", "10.0.0.1", "::2", "0.0.0.0", "example.com"])
def test_other_hosts(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize("url", LOOPBACK)
def test_dev_mode_accepts_http_to_loopback_everywhere_the_core_calls(url: str) -> None:
    assert parse_call_url(url, dev_mode=True) is not None
    assert validate_webhook(url, "whsec_12345678", [], dev_mode=True).callback_url == url
    assert validate_task(replace(DRAFT, callback_url=url), dev_mode=True).callback_url == url
    [spec] = validate_batch([DRAFT], url, dev_mode=True)
    assert spec.callback_url == url
    assert validate_job(job(url, callback_url=url), dev_mode=True).manifest_url == url


@pytest.mark.parametrize("url", LOOPBACK)
def test_without_dev_mode_http_to_loopback_is_refused_and_told_of_dev_mode(url: str) -> None:
    assert parse_call_url(url, dev_mode=False) is None
    for call in (
        lambda: validate_webhook(url, "whsec_12345678", []),
        lambda: validate_task(replace(DRAFT, callback_url=url)),
        lambda: validate_batch([DRAFT], url),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field.endswith("callback_url")
        assert (
            "must be an https URL (http:// to a loopback host only in development mode" in info.value.message
        )
    with pytest.raises(ValidationError) as info:
        validate_job(job(url))
    assert info.value.field == "manifest_url"
    assert "ASG_DEV_MODE" in info.value.message


@pytest.mark.parametrize("url", ELSEWHERE)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_http_to_any_other_host_is_refused_in_either_mode(url: str, dev_mode: bool) -> None:
    assert parse_call_url(url, dev_mode) is None
    with pytest.raises(ValidationError, match="callback_url must be an https URL"):
        validate_webhook(url, "whsec_12345678", [], dev_mode=dev_mode)
    with pytest.raises(ValidationError, match="manifest_url must be an s3://bucket/key or https:// URL"):
        validate_job(job(url), dev_mode=dev_mode)


def test_data_url_stays_https_in_dev_mode() -> None:
    # Labelers fetch data_url, not the core: development mode does not touch it.
    with pytest.raises(ValidationError, match="data_url must be an https URL"):
        validate_task(replace(DRAFT, data_url="http://127.0.0.1/a.jpg"), dev_mode=True)


@pytest.mark.parametrize("dev_mode", [False, True])
def test_https_is_accepted_in_either_mode(dev_mode: bool) -> None:
    url = "https://hooks.example.com/asg"
    assert validate_webhook(url, "whsec_12345678", [], dev_mode=dev_mode).callback_url == url
