"""Query parameters several routes share, bounded where they are declared: the bound is in the
OpenAPI, and a value outside it is a 400 naming the parameter (never a 500 from protobuf)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_PAGE = 200  # the core's bound too (DEFAULT_PAGE/MAX_PAGE of the list RPCs)

PageLimit = Annotated[
    int | None, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1 to {MAX_PAGE} (default 50)")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
