"""What the sync and async clients share: configuration and building each call's flow, no I/O."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from ._chain import receipt_flow
from ._errors import ASGError
from ._flows import (
    WAIT_UNTIL,
    Flow,
    decided,
    empty_flow,
    job_wait_flow,
    json_flow,
    poll_flow,
    receipt_wait_flow,
    request_flow,
    settled,
)
from ._version import __version__

DEFAULT_BASE_URL = "http://localhost:8081"
USER_AGENT = f"asg-gateway-python/{__version__}"
JSON = dict[str, Any]


def new_idempotency_key() -> str:
    """A key for a submission the caller did not key, so that retrying it cannot duplicate it."""
    return f"sdk-{uuid.uuid4().hex}"


def _without_none(fields: Mapping[str, Any]) -> JSON:
    return {name: value for name, value in fields.items() if value is not None}


class BaseClient:
    """Configuration and request building shared by ``ASGGatewayClient`` and its async twin.

    Each ``_method`` builds its request at once (so a missing API key fails before any I/O) and
    returns the flow that the subclass drives with its own transport.
    """

    _http: httpx.Client | httpx.AsyncClient
    _HTTP: ClassVar[type[httpx.Client] | type[httpx.AsyncClient]]  # the subclass's transport

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url or os.environ.get("ASG_BASE_URL") or DEFAULT_BASE_URL
        self.max_retries = max_retries
        # The quickstart keeps the key in ASG_API_KEY; an explicit api_key wins.
        self._api_key = api_key or os.environ.get("ASG_API_KEY")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._http = self._HTTP(base_url=self.base_url, timeout=timeout, headers=headers)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        params: JSON | None = None,
        auth: bool = True,
    ) -> httpx.Request:
        headers = {}
        if auth:
            if not self._api_key:
                raise ASGError(
                    f"{method} {path} needs an API key: pass api_key= to the client or set "
                    "ASG_API_KEY (register_customer() returns one)"
                )
            headers["Authorization"] = f"Bearer {self._api_key}"
        return self._http.build_request(method, path, json=json, params=params, headers=headers)

    def _call(self, request: httpx.Request, *, retry: bool) -> Flow[JSON]:
        return json_flow(request, max_retries=self.max_retries if retry else 0)

    def _register_customer(self, name: str, email: str) -> Flow[JSON]:
        # Not retried: a retry after a lost 201 would answer 409 and the key would be lost.
        body = {"name": name, "email": email}
        request = self._request("POST", "/v1/customers", json=body, auth=False)
        return self._call(request, retry=False)

    def _me(self) -> Flow[JSON]:
        return self._call(self._request("GET", "/v1/customers/me"), retry=True)

    def _set_consensus_method(self, method: str | None) -> Flow[JSON]:
        # Retried: setting the same value twice leaves the same profile.
        body = {"consensus_method": method}
        return self._call(self._request("PATCH", "/v1/customers/me", json=body), retry=True)

    def _rotate_key(self, grace_seconds: int | None) -> Flow[JSON]:
        # Not retried: a retry after a lost 201 would issue a second key and lose the first.
        body = _without_none({"grace_seconds": grace_seconds})
        return self._call(self._request("POST", "/v1/customers/me/keys", json=body), retry=False)

    def _list_keys(self) -> Flow[JSON]:
        return self._call(self._request("GET", "/v1/customers/me/keys"), retry=True)

    def _get_usage(self, month: str | None) -> Flow[JSON]:
        params = _without_none({"month": month})
        return self._call(self._request("GET", "/v1/billing/usage", params=params), retry=True)

    def _list_invoices(self) -> Flow[JSON]:
        return self._call(self._request("GET", "/v1/billing/invoices"), retry=True)

    def _submit_task(
        self,
        task_type: str,
        data_url: str,
        label_spec: Mapping[str, Any],
        consensus_threshold: int | None,
        callback_url: str | None,
        idempotency_key: str | None,
        expires_in_seconds: int | None = None,
    ) -> Flow[JSON]:
        if idempotency_key is None and self.max_retries > 0:
            idempotency_key = new_idempotency_key()
        body = _without_none(
            {
                "type": task_type,
                "data_url": data_url,
                "label_spec": dict(label_spec),
                "consensus_threshold": consensus_threshold,
                "callback_url": callback_url,
                "idempotency_key": idempotency_key,
                "expires_in_seconds": expires_in_seconds,
            }
        )
        request = self._request("POST", "/v1/tasks", json=body)
        return self._call(request, retry=idempotency_key is not None)

    def _submit_batch(self, tasks: Sequence[Mapping[str, Any]], callback_url: str | None) -> Flow[JSON]:
        body = _without_none({"tasks": [dict(t) for t in tasks], "callback_url": callback_url})
        # Only a batch whose every task is keyed can be sent twice without creating tasks twice.
        keyed = all(task.get("idempotency_key") is not None for task in tasks)
        return self._call(self._request("POST", "/v1/tasks/batch", json=body), retry=keyed)

    def _get_task(self, task_id: str) -> Flow[JSON]:
        return self._call(self._request("GET", _task_path(task_id)), retry=True)

    def _get_batch(self, batch_id: str) -> Flow[JSON]:
        path = f"/v1/tasks/batch/{quote(batch_id, safe='')}"
        return self._call(self._request("GET", path), retry=True)

    def _get_result(self, task_id: str) -> Flow[JSON]:
        return self._call(self._request("GET", _task_path(task_id, "/result")), retry=True)

    def _cancel_task(self, task_id: str) -> Flow[JSON]:
        # Cancelling a cancelled task answers it again: safe to retry.
        return self._call(self._request("DELETE", _task_path(task_id)), retry=True)

    def _list_tasks(
        self, status: str | None, batch_id: str | None, limit: int | None, cursor: str | None
    ) -> Flow[JSON]:
        params = _without_none({"status": status, "batch_id": batch_id, "limit": limit, "cursor": cursor})
        return self._call(self._request("GET", "/v1/tasks", params=params), retry=True)

    def _wait_for_result(self, task_id: str, until: str, timeout: float, interval: float) -> Flow[JSON]:
        if until not in WAIT_UNTIL:
            raise ValueError(f"until must be one of {', '.join(WAIT_UNTIL)}, not {until!r}")
        if interval <= 0:
            raise ValueError("interval must be more than 0 seconds")
        return poll_flow(
            self._request("GET", _task_path(task_id, "/result")),
            task_id=task_id,
            timeout=timeout,
            interval=interval,
            max_retries=self.max_retries,
            ready=settled if until == "settled" else decided,
        )

    def _wait_for_receipt(self, task_id: str, timeout: float, interval: float) -> Flow[JSON]:
        if interval <= 0:
            raise ValueError("interval must be more than 0 seconds")
        return receipt_wait_flow(
            self._request("GET", _task_path(task_id, "/result")),
            self._request("GET", _task_path(task_id, "/receipt")),
            task_id=task_id,
            timeout=timeout,
            interval=interval,
            max_retries=self.max_retries,
        )

    def _create_webhook(self, callback_url: str, secret: str, events: Iterable[str] | None) -> Flow[JSON]:
        if isinstance(events, str):
            raise TypeError("events must be a list of event names, not one string")
        # Not retried: a retry after a lost 201 would answer 409 `callback_url is already
        # registered`, hiding the webhook that was created.
        body = _without_none(
            {
                "callback_url": callback_url,
                "secret": secret,
                "events": None if events is None else list(events),
            }
        )
        return self._call(self._request("POST", "/v1/webhooks", json=body), retry=False)

    def _list_webhooks(self) -> Flow[JSON]:
        return self._call(self._request("GET", "/v1/webhooks"), retry=True)

    def _delete_webhook(self, webhook_id: str) -> Flow[None]:
        # Not retried: a retry after a lost 204 would answer 404 for a webhook that was deleted.
        request = self._request("DELETE", _webhook_path(webhook_id))
        return empty_flow(request, max_retries=0)

    def _list_deliveries(self, webhook_id: str, limit: int | None) -> Flow[JSON]:
        params = _without_none({"limit": limit})
        request = self._request("GET", _webhook_path(webhook_id, "/deliveries"), params=params)
        return self._call(request, retry=True)

    def _create_job(
        self,
        manifest_url: str,
        label_spec: Mapping[str, Any],
        task_type: str | None,
        consensus_threshold: int | None,
        callback_url: str | None,
        s3_credentials: Mapping[str, Any] | None,
    ) -> Flow[JSON]:
        # Not retried: the API takes no idempotency key for jobs, so a repeat after a lost 202
        # would start a second job reading the same manifest (and spending quota twice).
        body = _without_none(
            {
                "manifest_url": manifest_url,
                "label_spec": dict(label_spec),
                "type": task_type,
                "consensus_threshold": consensus_threshold,
                "callback_url": callback_url,
                "s3_credentials": None if s3_credentials is None else dict(s3_credentials),
            }
        )
        return self._call(self._request("POST", "/v1/jobs", json=body), retry=False)

    def _list_jobs(self, limit: int | None, cursor: str | None) -> Flow[JSON]:
        params = _without_none({"limit": limit, "cursor": cursor})
        return self._call(self._request("GET", "/v1/jobs", params=params), retry=True)

    def _get_job(self, job_id: str) -> Flow[JSON]:
        return self._call(self._request("GET", _job_path(job_id)), retry=True)

    def _wait_job(
        self,
        job_id: str,
        timeout: float | None,
        interval: float,
        on_progress: Callable[[JSON], object] | None,
    ) -> Flow[JSON]:
        if interval <= 0:
            raise ValueError("interval must be more than 0 seconds")
        return job_wait_flow(
            self._request("GET", _job_path(job_id)),
            job_id=job_id,
            timeout=timeout,
            interval=interval,
            max_retries=self.max_retries,
            on_progress=on_progress,
        )

    def _export_job(self, job_id: str) -> Flow[httpx.Response]:
        """The flow up to the export's status line; the driver sends it with ``stream=True``."""
        request = self._request("GET", _job_path(job_id, "/export"))
        request.headers["Accept"] = "application/x-ndjson"
        # Retrying is safe: nothing of the body has been handed to the caller yet.
        return request_flow(request, max_retries=self.max_retries)

    def _get_receipt(self, task_id: str) -> Flow[JSON]:
        return self._call(self._request("GET", _task_path(task_id, "/receipt")), retry=True)

    def _get_chain_headers(self, from_height: int, count: int | None) -> Flow[JSON]:
        params = _without_none({"from": from_height, "count": count})
        return self._call(self._request("GET", "/v1/chain/headers", params=params), retry=True)

    def _get_chain_transaction(self, txid: str) -> Flow[JSON]:
        path = f"/v1/chain/tx/{quote(txid, safe='')}"
        return self._call(self._request("GET", path), retry=True)

    def _fetch_receipt(self, task_id: str, fetch_headers: bool) -> Flow[tuple[JSON, dict[int, str] | None]]:
        """The receipt and, when ``fetch_headers``, the API's header at its block's height."""
        receipt_request = self._request("GET", _task_path(task_id, "/receipt"))

        def headers_request(height: int) -> httpx.Request:
            return self._request("GET", "/v1/chain/headers", params={"from": height, "count": 1})

        return receipt_flow(
            receipt_request, headers_request if fetch_headers else None, max_retries=self.max_retries
        )


def _task_path(task_id: str, suffix: str = "") -> str:
    # Quoted whole, so an id like "../customers/me" stays one path segment.
    return f"/v1/tasks/{quote(task_id, safe='')}{suffix}"


def _webhook_path(webhook_id: str, suffix: str = "") -> str:
    # Quoted whole, like a task id, so the id stays one path segment.
    return f"/v1/webhooks/{quote(webhook_id, safe='')}{suffix}"


def _job_path(job_id: str, suffix: str = "") -> str:
    # Quoted whole, like a task id, so the id stays one path segment.
    return f"/v1/jobs/{quote(job_id, safe='')}{suffix}"
