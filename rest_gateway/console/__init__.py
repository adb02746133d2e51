"""The Console: static files served at /console, a client of the public /v1 API like any other.

Nothing is fetched from elsewhere (no CDN); the Content-Security-Policy says so to the browser.
Images are the exception: a task's preview loads its own `data_url`, wherever the customer
keeps it."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: https: http:; style-src 'self';"
        " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def files() -> ConsoleFiles:
    return ConsoleFiles(directory=STATIC, html=True)
