"""A trailing slash on a /v1 route is the same route: `/v1/tasks/` answers as `/v1/tasks` does.

Starlette would answer 307 to the other spelling, which curl does not follow without `-L` and
which turns a POST into a second request a client may refuse to resend. The slashes are dropped
before routing (by the gateway's middleware, middleware.py), except under a mounted directory
(`/v1/docs/static/`), which keeps its own `dir/` handling; a path that is no route gets the
ordinary 404 either way. docs/api.md, "Paths".
"""

from __future__ import annotations

from starlette.routing import Match, Mount, Router
from starlette.types import Scope

PREFIX = "/v1/"


def canonical(scope: Scope, router: Router) -> Scope:
    """`scope` with its trailing slashes dropped, unless a mount of `router` serves the path as
    it is."""
    path: str = scope["path"]
    if not path.startswith(PREFIX) or not path.endswith("/"):
        return scope
    if any(isinstance(r, Mount) and r.matches(scope)[0] is not Match.NONE for r in router.routes):
        return scope
    raw: bytes = scope.get("raw_path") or path.encode()
    return {**scope, "path": path.rstrip("/"), "raw_path": raw.rstrip(b"/")}
