"""Routes that only read a JSON body (or one id from the path), call one core RPC with it and
render the reply: declared by what differs (body or id, RPC, renderer, status), written once here."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import pydantic
from fastapi import APIRouter, Request
from google.protobuf.message import Message
from starlette.responses import Response

from rest_gateway import decode
from rest_gateway.core import Core, CoreCall, CoreClient
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


def by_id(
    router: APIRouter,
    name: str,
    *,
    path: str,
    rpc: Callable[[CoreClient], Callable[..., Awaitable[Reply]]],
    request: Callable[..., Message],
    render: Callable[[Reply], Any],
    response_model: type[pydantic.BaseModel],
    refusals: tuple[int, ...] = (404,),
    method: str = "GET",
    description: str | None = None,
) -> None:
    """`{method} {path}` on `router`, whose one `{id}` goes to the core as `request(id=...)`.

    The endpoint's signature names the id, so the OpenAPI documents it as a path parameter
    exactly like a route written out as `async def {name}({id}: str, call: Core)`."""
    (param,) = re.findall(r"{(\w+)}", path)

    async def endpoint(call: CoreCall, **ids: str) -> Response:
        reply = await call(rpc(call.client), request(**{param: ids[param]}))
        return json(render(reply))

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(param, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
            inspect.Parameter("call", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Core),
        ]
    )
    router.add_api_route(
        path,
        endpoint,
        methods=[method],
        name=name,
        description=description,
        responses=errors(*refusals),
        response_model=response_model,
    )


def listing(
    router: APIRouter,
    name: str,
    *,
    rpc: Callable[[CoreClient], Callable[..., Awaitable[Any]]],
    request: Callable[[], Message],
    field: str,
    render: Callable[[Any], Any],
    response_model: type[pydantic.BaseModel],
    path: str = "",
) -> None:
    """`GET {path}` on `router`: every item of the customer's, `{field: [render(item), ...]}`,
    from an RPC that takes no parameters and answers them all in its repeated `field`."""

    async def endpoint(call: Core) -> Response:
        reply = await call(rpc(call.client), request())
        return json({field: [render(item) for item in getattr(reply, field)]})

    router.add_api_route(path, endpoint, methods=["GET"], name=name, response_model=response_model)
