"""Fetch the text a person labels: bounded in time and size, and never fatal.

A task's data is on someone else's server; when it is slow, huge or gone, the person still
sees the question and can answer or skip, with a clear note of what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

MAX_BYTES = 64 * 1024
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Fetched:
    text: str = ""
    truncated: bool = False
    error: str = ""  # set when there is no text to show; says why


async def fetch_text(client: httpx.AsyncClient, url: str, max_bytes: int = MAX_BYTES) -> Fetched:
    if urlsplit(url).scheme not in ("http", "https"):
        return Fetched(error=f"cannot fetch {url!r}: only http and https URLs are fetched")
    body = b""
    truncated = False
    try:
        async with client.stream("GET", url) as response:
            if response.status_code >= 400:
                return Fetched(error=f"fetching the text failed: HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    body, truncated = body[:max_bytes], True
                    break
    except httpx.TimeoutException:
        return Fetched(error="fetching the text failed: timed out")
    except httpx.HTTPError as exc:
        return Fetched(error=f"fetching the text failed: {type(exc).__name__}: {exc}")
    return Fetched(text=body.decode("utf-8", errors="replace"), truncated=truncated)


def new_client() -> httpx.AsyncClient:
    """One client per agent; honours SSL_CERT_FILE / SSL_CERT_DIR and proxy variables."""
    return httpx.AsyncClient(
        timeout=TIMEOUT_SECONDS,
        follow_redirects=True,
        max_redirects=5,
        headers={"Accept": "text/plain, text/*;q=0.9, */*;q=0.1"},
    )
