"""A completed job's export, read row by row from the open response.

The export of a large job does not fit in memory, so the clients never read it whole: the
response stays open and each JSONL line is decoded when the caller asks for the next row. The
objects close the response when iteration ends, fails, or when they are closed (``with``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

import httpx

from ._errors import APIConnectionError, ASGError

Row = dict[str, Any]


def decode_row(line: str, job_id: str, number: int) -> Row:
    """One export line as a dict; anything else means the stream is not an export."""
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ASGError(f"line {number} of job {job_id}'s export is not JSON: {line!r:.200}") from exc
    if not isinstance(row, dict):
        raise ASGError(f"line {number} of job {job_id}'s export is not a JSON object: {line!r:.200}")
    return row


class _Export:
    """What both twins share: the open response, and each line turned into a row."""

    def __init__(self, response: httpx.Response, job_id: str) -> None:
        self._response = response
        self.job_id = job_id
        self.request_id = response.headers.get("X-Request-ID")
        self._rows = 0

    def _check_unread(self) -> None:
        if self._response.is_closed:
            raise ASGError(f"the export of job {self.job_id} was already read or closed")

    def _row(self, line: str) -> Row | None:
        """The line's row; None for a blank line."""
        if not line.strip():
            return None
        self._rows += 1
        return decode_row(line, self.job_id, self._rows)

    def _cut(self, exc: Exception) -> APIConnectionError:
        # Raised by the caller `from exc`, so the httpx error stays the __cause__.
        detail = str(exc) or type(exc).__name__
        return APIConnectionError(
            f"the export of job {self.job_id} broke off after {self._rows} rows: {detail}"
        )


class JobExport(_Export):
    """The rows of ``export_job``: iterate once; ``with`` closes early exits at once.

    ``request_id`` is the response's ``X-Request-ID``. A connection lost mid-stream raises
    ``APIConnectionError``: the rows already yielded are good, and a new ``export_job`` call
    starts again from the first row.
    """

    def __iter__(self) -> Iterator[Row]:
        self._check_unread()
        try:
            for line in self._response.iter_lines():
                if (row := self._row(line)) is not None:
                    yield row
        except httpx.RequestError as exc:
            raise self._cut(exc) from exc
        finally:
            self._response.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncJobExport(_Export):
    """Asyncio twin of ``JobExport``: ``async for``, and ``async with`` or ``aclose()``."""

    async def __aiter__(self) -> AsyncIterator[Row]:
        self._check_unread()
        try:
            async for line in self._response.aiter_lines():
                if (row := self._row(line)) is not None:
                    yield row
        except httpx.RequestError as exc:
            raise self._cut(exc) from exc
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
