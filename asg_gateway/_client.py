"""The public clients: thin drivers of the flows in ``_flows.py`` over httpx, sync and async.

Every method that only drives a flow is declared once, as its builder in ``_base.py`` (which
holds its parameters and docstring), and made a method of each client by ``_blocking`` or
``_coroutine``; only the methods that do something with the flow's answer are written twice.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx

from ._base import BaseClient
from ._chain import VerifiedTaskReceipt, averify_task_receipt_document, verify_task_receipt_document
from ._export import AsyncJobExport, JobExport
from ._flows import Flow, Outcome
from ._receipts import Headers

T = TypeVar("T")
P = ParamSpec("P")


def _public(method: Callable[..., Any], build: Callable[..., Any], owner: str) -> None:
    """Name the method after its builder (``_me`` → ``me``), so help() and tracebacks read right."""
    method.__name__ = build.__name__.removeprefix("_")
    method.__qualname__ = f"{owner}.{method.__name__}"


def _blocking(
    build: Callable[Concatenate[BaseClient, P], Flow[T]],
) -> Callable[Concatenate[ASGGatewayClient, P], T]:
    """The blocking method running ``build``'s flow."""

    @functools.wraps(build)
    def method(self: ASGGatewayClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self, *args, **kwargs))

    _public(method, build, "ASGGatewayClient")
    return method


def _coroutine(
    build: Callable[Concatenate[BaseClient, P], Flow[T]],
) -> Callable[Concatenate[AsyncASGGatewayClient, P], Coroutine[Any, Any, T]]:
    """The coroutine method running ``build``'s flow."""

    @functools.wraps(build)
    async def method(self: AsyncASGGatewayClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self, *args, **kwargs))

    _public(method, build, "AsyncASGGatewayClient")
    return method


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

    register_customer = _blocking(BaseClient._register_customer)
    me = _blocking(BaseClient._me)
    set_consensus_method = _blocking(BaseClient._set_consensus_method)
    rotate_key = _blocking(BaseClient._rotate_key)
    list_keys = _blocking(BaseClient._list_keys)
    get_usage = _blocking(BaseClient._get_usage)
    list_invoices = _blocking(BaseClient._list_invoices)
    submit_task = _blocking(BaseClient._submit_task)
    submit_batch = _blocking(BaseClient._submit_batch)
    get_task = _blocking(BaseClient._get_task)
    get_batch = _blocking(BaseClient._get_batch)
    get_result = _blocking(BaseClient._get_result)
    cancel_task = _blocking(BaseClient._cancel_task)
    list_tasks = _blocking(BaseClient._list_tasks)
    poll_result = _blocking(BaseClient._poll_result)
    wait_for_result = _blocking(BaseClient._wait_for_result)
    wait_for_receipt = _blocking(BaseClient._wait_for_receipt)
    create_webhook = _blocking(BaseClient._create_webhook)
    list_webhooks = _blocking(BaseClient._list_webhooks)
    delete_webhook = _blocking(BaseClient._delete_webhook)
    list_deliveries = _blocking(BaseClient._list_deliveries)
    create_job = _blocking(BaseClient._create_job)
    get_job = _blocking(BaseClient._get_job)
    list_jobs = _blocking(BaseClient._list_jobs)
    wait_job = _blocking(BaseClient._wait_job)
    get_receipt = _blocking(BaseClient._get_receipt)
    get_chain_headers = _blocking(BaseClient._get_chain_headers)
    get_chain_transaction = _blocking(BaseClient._get_chain_transaction)

    def export_job(self, job_id: str) -> JobExport:
        """The completed job's results, one dict per task in manifest order, streamed.

        Raises ``ConflictError`` while the job is not completed (or if it failed), at once. The
        rows are read from the open response as you iterate; ``with`` closes it if you stop early.
        """
        return JobExport(self._run(self._export_job(job_id), stream=True), job_id)

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

    register_customer = _coroutine(BaseClient._register_customer)
    me = _coroutine(BaseClient._me)
    set_consensus_method = _coroutine(BaseClient._set_consensus_method)
    rotate_key = _coroutine(BaseClient._rotate_key)
    list_keys = _coroutine(BaseClient._list_keys)
    get_usage = _coroutine(BaseClient._get_usage)
    list_invoices = _coroutine(BaseClient._list_invoices)
    submit_task = _coroutine(BaseClient._submit_task)
    submit_batch = _coroutine(BaseClient._submit_batch)
    get_task = _coroutine(BaseClient._get_task)
    get_batch = _coroutine(BaseClient._get_batch)
    get_result = _coroutine(BaseClient._get_result)
    cancel_task = _coroutine(BaseClient._cancel_task)
    list_tasks = _coroutine(BaseClient._list_tasks)
    poll_result = _coroutine(BaseClient._poll_result)
    wait_for_result = _coroutine(BaseClient._wait_for_result)
    wait_for_receipt = _coroutine(BaseClient._wait_for_receipt)
    create_webhook = _coroutine(BaseClient._create_webhook)
    list_webhooks = _coroutine(BaseClient._list_webhooks)
    delete_webhook = _coroutine(BaseClient._delete_webhook)
    list_deliveries = _coroutine(BaseClient._list_deliveries)
    create_job = _coroutine(BaseClient._create_job)
    get_job = _coroutine(BaseClient._get_job)
    list_jobs = _coroutine(BaseClient._list_jobs)
    wait_job = _coroutine(BaseClient._wait_job)
    get_receipt = _coroutine(BaseClient._get_receipt)
    get_chain_headers = _coroutine(BaseClient._get_chain_headers)
    get_chain_transaction = _coroutine(BaseClient._get_chain_transaction)

    async def export_job(self, job_id: str) -> AsyncJobExport:
        """The completed job's rows, streamed: ``async for row in await client.export_job(id)``.

        Raises ``ConflictError`` at once while the job is not completed. See ``ASGGatewayClient``.
        """
        return AsyncJobExport(await self._run(self._export_job(job_id), stream=True), job_id)

    async def verify_receipt(self, task_id: str, headers: Headers | None = None) -> VerifiedTaskReceipt:
        """Fetch the task's receipt and check it offline; see ``ASGGatewayClient.verify_receipt``."""
        receipt, fetched = await self._run(self._fetch_receipt(task_id, headers is None))
        trusted = fetched if headers is None else headers
        assert trusted is not None
        return await averify_task_receipt_document(receipt, trusted, task_id)
