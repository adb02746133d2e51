"""Routes that only read a JSON body, call one core RPC with it and render the reply: declared
by what differs (body, RPC, renderer, status), written once here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import pydantic
from fastapi import APIRouter, Request
from google.protobuf.message import Message
from starlette.responses import Response

from rest_gateway import decode
from rest_gateway.core import Core, CoreClient
from rest_gateway.openapi import BODY, body, errors
from rest_gateway.responses import json

Reply = TypeVar("Reply")


class BodyModel(Protocol):
    """A request model that knows its proto (models.py)."""

    def to_proto(self) -> Message: ...


def post_body(
    router: APIRouter,
    name: str,
    *,
    reader: decode.Reader[Any],
    rpc: Callable[[CoreClient], Callable[..., Awaitable[Reply]]],
    render: Callable[[Reply], Any],
    status_code: int,
    response_model: type[pydantic.BaseModel],
    refusals: tuple[int, ...] = (),
    path: str = "",
) -> None:
    """`POST {path}` on `router`: `reader`'s model, `.to_proto()`, `rpc(client)`, `render`.

    `name` is the route's name, so its OpenAPI operation id and summary are those of a route
    written out as `async def {name}(…)`; `refusals` the statuses the RPC's errors map to."""

    async def endpoint(request: Request, call: Core) -> Response:
        model: BodyModel = await reader.read(request)
        reply = await call(rpc(call.client), model.to_proto())
        return json(render(reply), status_code)

    router.post(
        path,
        name=name,
        status_code=status_code,
        openapi_extra=body(reader.model),
        responses=errors(*BODY, *refusals),
        response_model=response_model,
    )(endpoint)
