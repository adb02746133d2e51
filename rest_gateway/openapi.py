"""What /v1/openapi.json says of a route: the request body it reads (models.py), the error
statuses it really sends, each with the `{"error": ...}` body and an example from docs/api.md,
and the bearer key to Authorize with.

FastAPI on its own lists a 422 the gateway never sends (validation errors are 400s here,
errors.py) and none of the errors it does send; `openapi()` below corrects both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from rest_gateway.models import ErrorBody, QuotaErrorBody

_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "Malformed JSON, a duplicate key, a wrong type, an unknown field or a broken rule; "
        "a query parameter out of range",
        "label_spec.options must contain at least 2 entries",
    ),
    401: ("No `Authorization: Bearer …` header, or an unknown or revoked key", "invalid api key"),
    403: ("The customer's label quota is exhausted", "quota exhausted"),
    404: ("Unknown id, or one that belongs to another customer", "task not found"),
    409: (
        "A conflict with what is stored (see the route's description in docs/api.md)",
        "email already registered",
    ),
    413: ("Body larger than the route's limit", "request body is larger than 65536 bytes"),
    415: (
        "A body whose Content-Type is not `application/json`",
        "request body must be sent as Content-Type: application/json",
    ),
    429: (
        "Over the key's rate limit; `Retry-After` says how many seconds to wait",
        "rate limit exceeded: retry after 1 s",
    ),
    503: ("The core is unreachable or restarting; `Retry-After` says when to try again", "core unavailable"),
}
_QUOTA_EXAMPLE = {
    "error": "quota exhausted",
    "limit": 500,
    "used": 498,
    "requested": 3,
    "hint": "3 labels requested, 2 of 500 left; an operator moves the customer to a tier with a bigger"
    " quota: asg customer tier cust_01J… pro (docs/billing.md)",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}

# What every route that takes an API key can answer, whatever it does.
AUTHED = (400, 401, 429, 503)
# What every route that reads a JSON body can answer besides.
BODY = (400, 413, 415)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering these error statuses."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        description, example = _ERRORS[status]
        quota = status == 403
        response: dict[str, Any] = {
            "model": QuotaErrorBody if quota else ErrorBody,
            "description": description,
            "content": {"application/json": {"example": _QUOTA_EXAMPLE if quota else {"error": example}}},
        }
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        responses[status] = response
    return responses


_REF = "#/components/schemas/{model}"
_BODIES: list[type[BaseModel]] = []


def body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The `openapi_extra=` of a route that reads `model` as its JSON body (decode.Reader reads it:
    FastAPI's own body parsing would answer its own errors, not docs/api.md's)."""
    _BODIES.append(model)
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def openapi(app: FastAPI, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The schema of `routes` (the app's, in the order to show), built once: FastAPI's, less
    its 422s, with the bearer key scheme."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=routes)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
                operation.setdefault("security", [{"apiKey": []}])
        components = schema.setdefault("components", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(unused, None)
        _, bodies = models_json_schema([(m, "validation") for m in _BODIES], ref_template=_REF)
        components.setdefault("schemas", {}).update(bodies.get("$defs", {}))
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "`sk_…` from POST /v1/customers"}
        }
        app.openapi_schema = schema
    return app.openapi_schema
