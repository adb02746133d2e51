"""The public clients: thin drivers of the flows in ``_flows.py`` over httpx, sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from ._base import JSON, BaseClient
from ._chain import VerifiedTaskReceipt, averify_task_receipt_document, verify_task_receipt_document
from ._export import AsyncJobExport, JobExport
from ._flows import Flow, Outcome
from ._receipts import Headers

T = TypeVar("T")


class ASGGatewayClient(BaseClient):
    """Blocking client for the ASG Gateway REST API.

    ``base_url`` defaults to ``$ASG_BASE_URL``, then ``http://localhost:8081``. Transient
    failures are retried up to ``max_retries`` times when repeating the request is safe.
    Use as a context manager, or call ``close()``, to release connections.
    """

    _http: httpx.Client
    _HTTP = httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, flow: Flow[T], *, stream: bool = False) -> T:
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                if isinstance(step, httpx.Request):
                    outcome = self._send(step, stream)
                else:
                    time.sleep(step)
                    outcome = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response | httpx.RequestError:
        """With ``stream``, a success comes back unread (the caller closes it) and an error read
        and closed, so that the flow can decode its ``{"error": ...}`` like any other."""
        try:
            response = self._http.send(request, stream=stream)
        except httpx.RequestError as exc:
            return exc
        if stream and not response.is_success:
            try:
                response.read()
            except httpx.RequestError as exc:
                return exc
            finally:
                response.close()
        return response

    def register_customer(self, name: str, email: str) -> JSON:
        """Create a customer (no API key needed). The returned ``api_key`` is shown only once.

        Never retried: a repeat after a lost answer would fail with 409 and lose the key.
        """
        return self._run(self._register_customer(name, email))

    def me(self) -> JSON:
        """The customer owning the API key, with its tier, quota, prices and rate limit."""
        return self._run(self._me())

    def set_consensus_method(self, method: str | None) -> JSON:
        """The default consensus method of your tasks that name none (``"majority"`` or
        ``"adaptive"``; ``None``: the deployment's default). Returns the profile after the
        change. See docs/api.md, "Customer settings"."""
        return self._run(self._set_consensus_method(method))

    def rotate_key(self, grace_seconds: int | None = None) -> JSON:
        """A new API key (``api_key``, shown once). This client's key keeps working for
        ``grace_seconds`` (default a day; 0 retires it at once); build a new client with the
        new key. See docs/api.md, "Rotating a key"."""
        return self._run(self._rotate_key(grace_seconds))

    def list_keys(self) -> JSON:
        """The keys that still work: ``{"keys": [{"key_hint", "created_at", "expires_at"}]}``."""
        return self._run(self._list_keys())

    def get_usage(self, month: str | None = None) -> JSON:
        """Usage in a UTC month (``"2026-04"``; default the current one), by task type."""
        return self._run(self._get_usage(month))

    def list_invoices(self) -> JSON:
        """``{"invoices": [...]}``, newest first; the current month is a ``draft``."""
        return self._run(self._list_invoices())

    def submit_task(
        self,
        task_type: str,
        data_url: str,
        label_spec: Mapping[str, Any],
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> JSON:
        """Submit one task; returns ``{task_id, status, created_at}``.

        A repeated ``idempotency_key`` returns the first task with ``"idempotent": True``. When
        none is given and retries are on, the SDK makes one so a retry cannot create a second task.
        ``expires_in_seconds`` is a deadline: a task not decided by then ends ``expired``.
        """
        return self._run(
            self._submit_task(
                task_type,
                data_url,
                label_spec,
                consensus_threshold,
                callback_url,
                idempotency_key,
                expires_in_seconds,
            )
        )

    def submit_batch(self, tasks: Sequence[Mapping[str, Any]], callback_url: str | None = None) -> JSON:
        """Submit 1 to 1000 tasks at once; returns ``{batch_id, task_count, status, task_ids}``.

        Retried only when every task carries an ``idempotency_key``: otherwise a retry after a
        lost answer would create the tasks twice.
        """
        return self._run(self._submit_batch(tasks, callback_url))

    def get_task(self, task_id: str) -> JSON:
        """A task's status and what was submitted."""
        return self._run(self._get_task(task_id))

    def get_batch(self, batch_id: str) -> JSON:
        """A batch's tasks counted by status: ``total``, ``decided``, ``counts``, ``created_at``."""
        return self._run(self._get_batch(batch_id))

    def get_result(self, task_id: str) -> JSON:
        """The result when ready, else ``{"status": ..., "message": ...}`` (HTTP 202)."""
        return self._run(self._get_result(task_id))

    def cancel_task(self, task_id: str) -> JSON:
        """Stop a task not decided yet; returns its result, ``status`` ``cancelled``. The labels
        already collected are billed; ``ConflictError`` once the task was decided."""
        return self._run(self._cancel_task(task_id))

    def list_tasks(
        self,
        status: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JSON:
        """One page of tasks, newest first: ``{"tasks": [...], "next_cursor": str | None}``."""
        return self._run(self._list_tasks(status, batch_id, limit, cursor))

    def poll_result(self, task_id: str, timeout: float = 300, interval: float = 5) -> JSON:
        """Wait for the result and return it; raises ``PollTimeoutError`` after ``timeout`` s.

        Waits ``interval`` seconds between fetches, 1.5 times longer each round up to 60 s.
        """
        return self._run(self._wait_for_result(task_id, "verified", timeout, interval))

    def wait_for_result(
        self, task_id: str, until: str = "verified", timeout: float = 300, interval: float = 1
    ) -> JSON:
        """Wait until the task is decided (``until="verified"``: verified, settled, failed,
        cancelled or expired) or also paid (``until="settled"``: ``settlement`` is set, or the
        task pays nobody: failed, or ended before any label), and return its result.

        Waits ``interval`` seconds (or the server's ``Retry-After``), 1.5 times longer each round
        up to 60 s; raises ``PollTimeoutError`` naming the last status after ``timeout`` s.
        """
        return self._run(self._wait_for_result(task_id, until, timeout, interval))

    def wait_for_receipt(self, task_id: str, timeout: float = 300, interval: float = 1) -> JSON:
        """Wait until the task is settled and its payout mined, and return the receipt (what
        ``get_receipt`` returns; check it with ``verify_receipt``). ``NoReceiptError`` when the
        task paid nobody, ``PollTimeoutError`` after ``timeout`` s."""
        return self._run(self._wait_for_receipt(task_id, timeout, interval))

    def create_webhook(self, callback_url: str, secret: str, events: Iterable[str] | None = None) -> JSON:
        """Register an ``https://`` URL for event deliveries signed with ``secret``.

        Returns ``{webhook_id, callback_url, events, active, created_at}`` (never the secret).
        ``events`` defaults to every event type. Never retried: a repeat after a lost answer
        would fail with 409 ``callback_url is already registered``.
        """
        return self._run(self._create_webhook(callback_url, secret, events))

    def list_webhooks(self) -> JSON:
        """The customer's webhooks, oldest first, deactivated ones included: ``{"webhooks": [...]}``."""
        return self._run(self._list_webhooks())

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; its pending deliveries are abandoned.

        Never retried: a repeat after a lost answer would raise ``NotFoundError``.
        """
        self._run(self._delete_webhook(webhook_id))

    def list_deliveries(self, webhook_id: str, limit: int | None = None) -> JSON:
        """A webhook's deliveries, newest first: ``{"deliveries": [...]}``."""
        return self._run(self._list_deliveries(webhook_id, limit))

    def create_job(
        self,
        manifest_url: str,
        label_spec: Mapping[str, Any],
        task_type: str | None = None,
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        s3_credentials: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Start a batch job over a JSONL manifest; returns ``{job_id, status}`` (``pending``).

        ``s3_credentials`` (``access_key_id``, ``secret_access_key``, ``region``, optional
        ``endpoint_url``) is required for an ``s3://`` manifest and refused for ``https://``.
        Never retried: the API has no idempotency key for jobs, so a repeat after a lost answer
        would start a second job over the same manifest.
        """
        return self._run(
            self._create_job(
                manifest_url, label_spec, task_type, consensus_threshold, callback_url, s3_credentials
            )
        )

    def get_job(self, job_id: str) -> JSON:
        """A job's status, counts, first 100 line errors and ``failure_reason``."""
        return self._run(self._get_job(job_id))

    def list_jobs(self, limit: int | None = None, cursor: str | None = None) -> JSON:
        """One page of the customer's jobs, newest first: ``{"jobs": [...], "next_cursor": str | None}``
        (summaries; ``get_job`` has the per-status counts). How to find a job whose
        ``create_job`` answer was lost: that call is never retried."""
        return self._run(self._list_jobs(limit, cursor))

    def wait_job(
        self,
        job_id: str,
        timeout: float | None = 3600,
        interval: float = 5,
        on_progress: Callable[[JSON], object] | None = None,
    ) -> JSON:
        """Fetch the job every ``interval`` s until it is ``completed`` or ``failed``; return it.

        A failed job is returned, not raised: read its ``failure_reason``. ``on_progress`` gets
        every job fetched. ``timeout=None`` waits for as long as the job runs; otherwise
        ``JobTimeoutError`` is raised after ``timeout`` s (the job keeps running).
        """
        return self._run(self._wait_job(job_id, timeout, interval, on_progress))

    def export_job(self, job_id: str) -> JobExport:
        """The completed job's results, one dict per task in manifest order, streamed.

        Raises ``ConflictError`` while the job is not completed (or if it failed), at once. The
        rows are read from the open response as you iterate; ``with`` closes it if you stop early.
        """
        return JobExport(self._run(self._export_job(job_id), stream=True), job_id)

    def get_receipt(self, task_id: str) -> JSON:
        """The payout receipt of a settled task (BEEF, block, outputs, the task's ``payouts``).

        Raises ``ConflictError`` while the task is not settled or its payout not mined yet
        (retry in a few seconds), ``NotFoundError`` for an unknown task. Not verified: see
        ``verify_receipt``.
        """
        return self._run(self._get_receipt(task_id))

    def get_chain_headers(self, from_height: int = 0, count: int | None = None) -> JSON:
        """Block headers from ``from_height`` (up to ``count``, 1..2000, default 100):
        ``{"headers": [{height, hash, header, merkle_root, time}], "tip_height": int | None}``."""
        return self._run(self._get_chain_headers(from_height, count))

    def get_chain_transaction(self, txid: str) -> JSON:
        """A ledger transaction: ``{txid, hex, block_height, block_hash, fee, outputs}``."""
        return self._run(self._get_chain_transaction(txid))

    def verify_receipt(self, task_id: str, headers: Headers | None = None) -> VerifiedTaskReceipt:
        """Fetch the task's receipt and check it offline; raises ``ReceiptInvalid`` on any mismatch.

        ``headers`` is what you trust: height → header hex, or a bsv-sdk ``ChainTracker``
        (on testnet/mainnet, one backed by a chain you trust). Without it the header comes from
        this API's ``/v1/chain/headers``: right for the local ledger, whose only miner is the
        platform. With a ``ChainTracker``, call this outside a running event loop.
        """
        receipt, fetched = self._run(self._fetch_receipt(task_id, headers is None))
        trusted = fetched if headers is None else headers
        assert trusted is not None
        return verify_task_receipt_document(receipt, trusted, task_id)


class AsyncASGGatewayClient(BaseClient):
    """Asyncio twin of ``ASGGatewayClient``: the same methods, as coroutines.

    Use with ``async with``, or call ``aclose()``, to release connections.
    """

    _http: httpx.AsyncClient
    _HTTP = httpx.AsyncClient

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, flow: Flow[T], *, stream: bool = False) -> T:
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                if isinstance(step, httpx.Request):
                    outcome = await self._send(step, stream)
                else:
                    await asyncio.sleep(step)
                    outcome = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(
        self, request: httpx.Request, stream: bool = False
    ) -> httpx.Response | httpx.RequestError:
        """As ``ASGGatewayClient._send``: a streamed error is read and closed here."""
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.RequestError as exc:
            return exc
        if stream and not response.is_success:
            try:
                await response.aread()
            except httpx.RequestError as exc:
                return exc
            finally:
                await response.aclose()
        return response

    async def register_customer(self, name: str, email: str) -> JSON:
        """Create a customer (no API key needed); never retried. See ``ASGGatewayClient``."""
        return await self._run(self._register_customer(name, email))

    async def me(self) -> JSON:
        """The customer owning the API key, with its tier, quota, prices and rate limit."""
        return await self._run(self._me())

    async def set_consensus_method(self, method: str | None) -> JSON:
        """Your tasks' default consensus method. See ``ASGGatewayClient.set_consensus_method``."""
        return await self._run(self._set_consensus_method(method))

    async def rotate_key(self, grace_seconds: int | None = None) -> JSON:
        """A new API key. See ``ASGGatewayClient.rotate_key``."""
        return await self._run(self._rotate_key(grace_seconds))

    async def list_keys(self) -> JSON:
        """The keys that still work. See ``ASGGatewayClient.list_keys``."""
        return await self._run(self._list_keys())

    async def get_usage(self, month: str | None = None) -> JSON:
        """Usage in a UTC month (``"2026-04"``; default the current one), by task type."""
        return await self._run(self._get_usage(month))

    async def list_invoices(self) -> JSON:
        """``{"invoices": [...]}``, newest first; the current month is a ``draft``."""
        return await self._run(self._list_invoices())

    async def submit_task(
        self,
        task_type: str,
        data_url: str,
        label_spec: Mapping[str, Any],
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> JSON:
        """Submit one task; keyed automatically when retries are on. See ``ASGGatewayClient``."""
        return await self._run(
            self._submit_task(
                task_type,
                data_url,
                label_spec,
                consensus_threshold,
                callback_url,
                idempotency_key,
                expires_in_seconds,
            )
        )

    async def submit_batch(self, tasks: Sequence[Mapping[str, Any]], callback_url: str | None = None) -> JSON:
        """Submit 1 to 1000 tasks; retried only if every task has an ``idempotency_key``."""
        return await self._run(self._submit_batch(tasks, callback_url))

    async def get_task(self, task_id: str) -> JSON:
        """A task's status and what was submitted."""
        return await self._run(self._get_task(task_id))

    async def get_batch(self, batch_id: str) -> JSON:
        """A batch's tasks counted by status (see the sync client)."""
        return await self._run(self._get_batch(batch_id))

    async def get_result(self, task_id: str) -> JSON:
        """The result when ready, else ``{"status": ..., "message": ...}`` (HTTP 202)."""
        return await self._run(self._get_result(task_id))

    async def cancel_task(self, task_id: str) -> JSON:
        """Stop a task not decided yet. See ``ASGGatewayClient.cancel_task``."""
        return await self._run(self._cancel_task(task_id))

    async def list_tasks(
        self,
        status: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JSON:
        """One page of tasks, newest first: ``{"tasks": [...], "next_cursor": str | None}``."""
        return await self._run(self._list_tasks(status, batch_id, limit, cursor))

    async def poll_result(self, task_id: str, timeout: float = 300, interval: float = 5) -> JSON:
        """Wait for the result and return it; raises ``PollTimeoutError`` after ``timeout`` s."""
        return await self._run(self._wait_for_result(task_id, "verified", timeout, interval))

    async def wait_for_result(
        self, task_id: str, until: str = "verified", timeout: float = 300, interval: float = 1
    ) -> JSON:
        """Wait until the task is decided or paid. See ``ASGGatewayClient.wait_for_result``."""
        return await self._run(self._wait_for_result(task_id, until, timeout, interval))

    async def wait_for_receipt(self, task_id: str, timeout: float = 300, interval: float = 1) -> JSON:
        """Wait for the task's receipt. See ``ASGGatewayClient.wait_for_receipt``."""
        return await self._run(self._wait_for_receipt(task_id, timeout, interval))

    async def create_webhook(
        self, callback_url: str, secret: str, events: Iterable[str] | None = None
    ) -> JSON:
        """Register a webhook; never retried. See ``ASGGatewayClient``."""
        return await self._run(self._create_webhook(callback_url, secret, events))

    async def list_webhooks(self) -> JSON:
        """The customer's webhooks, oldest first, deactivated ones included: ``{"webhooks": [...]}``."""
        return await self._run(self._list_webhooks())

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; never retried (a repeat would raise ``NotFoundError``)."""
        await self._run(self._delete_webhook(webhook_id))

    async def list_deliveries(self, webhook_id: str, limit: int | None = None) -> JSON:
        """A webhook's deliveries, newest first: ``{"deliveries": [...]}``."""
        return await self._run(self._list_deliveries(webhook_id, limit))

    async def create_job(
        self,
        manifest_url: str,
        label_spec: Mapping[str, Any],
        task_type: str | None = None,
        consensus_threshold: int | None = None,
        callback_url: str | None = None,
        s3_credentials: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Start a batch job; never retried. See ``ASGGatewayClient``."""
        return await self._run(
            self._create_job(
                manifest_url, label_spec, task_type, consensus_threshold, callback_url, s3_credentials
            )
        )

    async def get_job(self, job_id: str) -> JSON:
        """A job's status, counts, first 100 line errors and ``failure_reason``."""
        return await self._run(self._get_job(job_id))

    async def list_jobs(self, limit: int | None = None, cursor: str | None = None) -> JSON:
        """One page of the customer's jobs, newest first (see the sync client)."""
        return await self._run(self._list_jobs(limit, cursor))

    async def wait_job(
        self,
        job_id: str,
        timeout: float | None = 3600,
        interval: float = 5,
        on_progress: Callable[[JSON], object] | None = None,
    ) -> JSON:
        """Until the job is ``completed`` or ``failed``; see ``ASGGatewayClient.wait_job``."""
        return await self._run(self._wait_job(job_id, timeout, interval, on_progress))

    async def export_job(self, job_id: str) -> AsyncJobExport:
        """The completed job's rows, streamed: ``async for row in await client.export_job(id)``.

        Raises ``ConflictError`` at once while the job is not completed. See ``ASGGatewayClient``.
        """
        return AsyncJobExport(await self._run(self._export_job(job_id), stream=True), job_id)

    async def get_receipt(self, task_id: str) -> JSON:
        """The payout receipt of a settled task; see ``ASGGatewayClient.get_receipt``."""
        return await self._run(self._get_receipt(task_id))

    async def get_chain_headers(self, from_height: int = 0, count: int | None = None) -> JSON:
        """Block headers from ``from_height``; see ``ASGGatewayClient.get_chain_headers``."""
        return await self._run(self._get_chain_headers(from_height, count))

    async def get_chain_transaction(self, txid: str) -> JSON:
        """A ledger transaction: ``{txid, hex, block_height, block_hash, fee, outputs}``."""
        return await self._run(self._get_chain_transaction(txid))

    async def verify_receipt(self, task_id: str, headers: Headers | None = None) -> VerifiedTaskReceipt:
        """Fetch the task's receipt and check it offline; see ``ASGGatewayClient.verify_receipt``."""
        receipt, fetched = await self._run(self._fetch_receipt(task_id, headers is None))
        trusted = fetched if headers is None else headers
        assert trusted is not None
        return await averify_task_receipt_document(receipt, trusted, task_id)
