"""JSON responses serialised with orjson (the hot path skips FastAPI's encoder)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")
