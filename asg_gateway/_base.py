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

    # Each builder below is a public method of both clients (see ``_client.py``): its name
    # without the underscore, its parameters and its docstring are the method's.

    def _register_customer(self, name: str, email: str) -> Flow[JSON]:
        """Create a customer (no API key needed). The returned ``api_key`` is shown only once.

        Never retried: a repeat after a lost answer would fail with 409 and lose the key.
        """
        body = {"name": name, "email": email}
        request = self._request("POST", "/v1/customers", json=body, auth=False)
        return self._call(request, retry=False)

    def _me(self) -> Flow[JSON]:
        """The customer owning the API key, with its tier, quota, prices and rate limit."""
        return self._call(self._request("GET", "/v1/customers/me"), retry=True)

    def _set_consensus_method(self, method: str | None) -> Flow[JSON]:
        """The default consensus method of your tasks that name none (``"majority"`` or
        ``"adaptive"``; ``None``: the deployment's default). Returns the profile after the
        change. See docs/api.md, "Customer settings"."""
        # Retried: setting the same value twice leaves the same profile.
        body = {"consensus_method": method}
        return self._call(self._request("PATCH", "/v1/customers/me", json=body), retry=True)

    def _rotate_key(self, grace_seconds: int | None = None) -> Flow[JSON]:
        """A new API key (``api_key``, shown once). This client's key keeps working for
        ``grace_seconds`` (default a day; 0 retires it at once); build a new client with the
        new key. See docs/api.md, "Rotating a key"."""
        # Not retried: a retry after a lost 201 would issue a second key and lose the first.
        body = _without_none({"grace_seconds": grace_seconds})
        return self._call(self._request("POST", "/v1/customers/me/keys", json=body), retry=False)

    def _list_keys(self) -> Flow[JSON]:
        """The keys that still work: ``{"keys": [{"key_hint", "created_at", "expires_at"}]}``."""
        return self._call(self._request("GET", "/v1/customers/me/keys"), retry=True)

    def _get_usage(self, month: str | None = None) -> Flow[JSON]:
        """Usage in a UTC month (``"2026-04"``; default the current one), by task type."""
        params = _without_none({"month": month})
        return self._call(self._request("GET", "/v1/billing/usage", params=params), retry=True)

    def _list_invoices(self) -> Flow[JSON]:
        """``{"invoices": [...]}``, newest first; the current month is a ``draft``."""
        return self._call(self._request("GET", "/v1/billing/invoices"), retry=True)

    def _submit_task(
        self,
        task_type: str,
        data_url: str,
        label_spec: Mapping[str, Any],
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        expires_in_seconds: int | None = None,
        labor: str | None = None,
    ) -> Flow[JSON]:
        """Submit one task; returns ``{task_id, status, created_at}``.

        A repeated ``idempotency_key`` returns the first task with ``"idempotent": True``. When
        none is given and retries are on, the SDK makes one so a retry cannot create a second task.
        ``expires_in_seconds`` is a deadline: a task not decided by then ends ``expired``.
        ``labor="challenge"`` offers the task only to challenge gateways (default ``"any"``).
        """
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
                "labor": labor,
            }
        )
        request = self._request("POST", "/v1/tasks", json=body)
        return self._call(request, retry=idempotency_key is not None)

    def _submit_batch(
        self,
        tasks: Sequence[Mapping[str, Any]],
        callback_url: str | None = None,
        labor: str | None = None,
    ) -> Flow[JSON]:
        """Submit 1 to 1000 tasks at once; returns ``{batch_id, task_count, status, task_ids}``.
        ``labor="challenge"`` opts the tasks that name none into challenge-gateway labor.

        Retried only when every task carries an ``idempotency_key``: otherwise a retry after a
        lost answer would create the tasks twice.
        """
        body = _without_none(
            {"tasks": [dict(t) for t in tasks], "callback_url": callback_url, "labor": labor}
        )
        keyed = all(task.get("idempotency_key") is not None for task in tasks)
        return self._call(self._request("POST", "/v1/tasks/batch", json=body), retry=keyed)

    def _get_task(self, task_id: str) -> Flow[JSON]:
        """A task's status and what was submitted."""
        return self._call(self._request("GET", _task_path(task_id)), retry=True)

    def _get_batch(self, batch_id: str) -> Flow[JSON]:
        """A batch's tasks counted by status: ``total``, ``decided``, ``counts``, ``created_at``."""
        path = f"/v1/tasks/batch/{quote(batch_id, safe='')}"
        return self._call(self._request("GET", path), retry=True)

    def _get_result(self, task_id: str) -> Flow[JSON]:
        """The result when ready, else ``{"status": ..., "message": ...}`` (HTTP 202)."""
        return self._call(self._request("GET", _task_path(task_id, "/result")), retry=True)

    def _cancel_task(self, task_id: str) -> Flow[JSON]:
        """Stop a task not decided yet; returns its result, ``status`` ``cancelled``. The labels
        already collected are billed; ``ConflictError`` once the task was decided."""
        # Cancelling a cancelled task answers it again: safe to retry.
        return self._call(self._request("DELETE", _task_path(task_id)), retry=True)

    def _list_tasks(
        self,
        status: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Flow[JSON]:
        """One page of tasks, newest first: ``{"tasks": [...], "next_cursor": str | None}``."""
        params = _without_none({"status": status, "batch_id": batch_id, "limit": limit, "cursor": cursor})
        return self._call(self._request("GET", "/v1/tasks", params=params), retry=True)

    def _poll_result(self, task_id: str, timeout: float = 300, interval: float = 5) -> Flow[JSON]:
        """Wait for the result and return it; raises ``PollTimeoutError`` after ``timeout`` s.

        Waits ``interval`` seconds between fetches, 1.5 times longer each round up to 60 s.
        """
        return self._wait_for_result(task_id, "verified", timeout, interval)

    def _wait_for_result(
        self, task_id: str, until: str = "verified", timeout: float = 300, interval: float = 1
    ) -> Flow[JSON]:
        """Wait until the task is decided (``until="verified"``: verified, settled, failed,
        cancelled or expired) or also paid (``until="settled"``: ``settlement`` is set, or the
        task pays nobody: failed, or ended before any label), and return its result.

        Waits ``interval`` seconds (or the server's ``Retry-After``), 1.5 times longer each round
        up to 60 s; raises ``PollTimeoutError`` naming the last status after ``timeout`` s.
        """
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

    def _wait_for_receipt(self, task_id: str, timeout: float = 300, interval: float = 1) -> Flow[JSON]:
        """Wait until the task is settled and its payout mined, and return the receipt (what
        ``get_receipt`` returns; check it with ``verify_receipt``). ``NoReceiptError`` when the
        task paid nobody, ``PollTimeoutError`` after ``timeout`` s."""
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

    def _create_webhook(
        self, callback_url: str, secret: str, events: Iterable[str] | None = None
    ) -> Flow[JSON]:
        """Register an ``https://`` URL for event deliveries signed with ``secret``.

        Returns ``{webhook_id, callback_url, events, active, created_at}`` (never the secret).
        ``events`` defaults to every event type. Never retried: a repeat after a lost answer
        would fail with 409 ``callback_url is already registered``.
        """
        if isinstance(events, str):
            raise TypeError("events must be a list of event names, not one string")
        body = _without_none(
            {
                "callback_url": callback_url,
                "secret": secret,
                "events": None if events is None else list(events),
            }
        )
        return self._call(self._request("POST", "/v1/webhooks", json=body), retry=False)

    def _list_webhooks(self) -> Flow[JSON]:
        """The customer's webhooks, oldest first, deactivated ones included: ``{"webhooks": [...]}``."""
        return self._call(self._request("GET", "/v1/webhooks"), retry=True)

    def _delete_webhook(self, webhook_id: str) -> Flow[None]:
        """Delete a webhook; its pending deliveries are abandoned.

        Never retried: a repeat after a lost answer would raise ``NotFoundError``.
        """
        request = self._request("DELETE", _webhook_path(webhook_id))
        return empty_flow(request, max_retries=0)

    def _list_deliveries(self, webhook_id: str, limit: int | None = None) -> Flow[JSON]:
        """A webhook's deliveries, newest first: ``{"deliveries": [...]}``."""
        params = _without_none({"limit": limit})
        request = self._request("GET", _webhook_path(webhook_id, "/deliveries"), params=params)
        return self._call(request, retry=True)

    def _create_job(
        self,
        manifest_url: str,
        label_spec: Mapping[str, Any],
        task_type: str | None = None,
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        s3_credentials: Mapping[str, Any] | None = None,
        labor: str | None = None,
    ) -> Flow[JSON]:
        """Start a batch job over a JSONL manifest; returns ``{job_id, status}`` (``pending``).

        ``s3_credentials`` (``access_key_id``, ``secret_access_key``, ``region``, optional
        ``endpoint_url``) is required for an ``s3://`` manifest and refused for ``https://``.
        ``labor="challenge"`` offers every task of the job only to challenge gateways.
        Never retried: the API has no idempotency key for jobs, so a repeat after a lost answer
        would start a second job over the same manifest (and spend quota twice).
        """
        body = _without_none(
            {
                "manifest_url": manifest_url,
                "label_spec": dict(label_spec),
                "type": task_type,
                "consensus_threshold": consensus_threshold,
                "callback_url": callback_url,
                "s3_credentials": None if s3_credentials is None else dict(s3_credentials),
                "labor": labor,
            }
        )
        return self._call(self._request("POST", "/v1/jobs", json=body), retry=False)

    def _list_jobs(self, limit: int | None = None, cursor: str | None = None) -> Flow[JSON]:
        """One page of the customer's jobs, newest first: ``{"jobs": [...], "next_cursor": str | None}``
        (summaries; ``get_job`` has the per-status counts). How to find a job whose
        ``create_job`` answer was lost: that call is never retried."""
        params = _without_none({"limit": limit, "cursor": cursor})
        return self._call(self._request("GET", "/v1/jobs", params=params), retry=True)

    def _get_job(self, job_id: str) -> Flow[JSON]:
        """A job's status, counts, first 100 line errors and ``failure_reason``."""
        return self._call(self._request("GET", _job_path(job_id)), retry=True)

    def _wait_job(
        self,
        job_id: str,
        timeout: float | None = 3600,
        interval: float = 5,
        on_progress: Callable[[JSON], object] | None = None,
    ) -> Flow[JSON]:
        """Fetch the job every ``interval`` s until it is ``completed`` or ``failed``; return it.

        A failed job is returned, not raised: read its ``failure_reason``. ``on_progress`` gets
        every job fetched. ``timeout=None`` waits for as long as the job runs; otherwise
        ``JobTimeoutError`` is raised after ``timeout`` s (the job keeps running).
        """
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
        """The payout receipt of a settled task (BEEF, block, outputs, the task's ``payouts``).

        Raises ``ConflictError`` while the task is not settled or its payout not mined yet
        (retry in a few seconds), ``NotFoundError`` for an unknown task. Not verified: see
        ``verify_receipt``.
        """
        return self._call(self._request("GET", _task_path(task_id, "/receipt")), retry=True)

    def _get_chain_headers(self, from_height: int = 0, count: int | None = None) -> Flow[JSON]:
        """Block headers from ``from_height`` (up to ``count``, 1..2000, default 100):
        ``{"headers": [{height, hash, header, merkle_root, time}], "tip_height": int | None}``."""
        params = _without_none({"from": from_height, "count": count})
        return self._call(self._request("GET", "/v1/chain/headers", params=params), retry=True)

    def _get_chain_transaction(self, txid: str) -> Flow[JSON]:
        """A ledger transaction: ``{txid, hex, block_height, block_hash, fee, outputs}``."""
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
