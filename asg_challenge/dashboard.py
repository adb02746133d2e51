"""The dashboard API of seed 003 under `/dashboard/api/` (HTTP Basic), plus the item upload
extension. Thin: check the request, call the Gateway/Store, shape the reply.

Browsers resend Basic credentials on their own, so every write also needs a JSON content type
and, when the browser says where it comes from, this dashboard's own origin (CSRF)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asg_challenge.domain import check_rule_pattern, csv_cell, validate_rule
from asg_challenge.errors import (
    BadRequest,
    Forbidden,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from asg_challenge.gateway import Gateway
from asg_challenge.items import parse_upload

MAX_BODY = 16 * 1024 * 1024
MODALITIES = ("image", "text")
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "jsonl": "application/x-ndjson"}
EXPORT_FIELDS = ("item_id", "dataset_id", "label", "agreement", "votes", "labeled_at", "external_id")
BASE62 = string.ascii_letters + string.digits

Handler = Callable[[Request, Gateway], Awaitable[Response]]


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _authorised(request: Request, gw: Gateway) -> bool:
    """Basic credentials compared in constant time: both sides hashed, both fields checked."""
    import base64

    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    user, password = "", ""
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""

    def same(a: str, b: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(a.encode()).digest(), hashlib.sha256(b.encode()).digest())

    ok_user = same(user, gw.settings.dashboard_user)
    ok_pass = same(password, gw.settings.dashboard_password or "")
    return ok_user & ok_pass


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("cross-site dashboard writes are refused")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            raise Forbidden(f"Origin {origin} is not this dashboard's origin")


def endpoint(
    handler: Handler, *, write: bool = False, body_types: tuple[str, ...] = ("application/json",)
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        gw = _gateway(request)
        if not _authorised(request, gw):
            raise Unauthorized("dashboard credentials required")
        if write:
            _same_origin(request)
            if request.method in ("POST", "PATCH"):
                ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in body_types:
                    raise UnsupportedMediaType(f"Content-Type must be {' or '.join(body_types)}")
                length = request.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > MAX_BODY:
                    raise PayloadTooLarge(f"body is over {MAX_BODY} bytes")
        return await handler(request, gw)

    return run


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


# --- metrics and config --------------------------------------------------------------------


async def metrics(request: Request, gw: Gateway) -> Response:
    return JSONResponse(gw.metrics())


async def get_config(request: Request, gw: Gateway) -> Response:
    return JSONResponse(gw.config.as_dict())


async def post_config(request: Request, gw: Gateway) -> Response:
    return JSONResponse(gw.update_config(await _json_object(request)).as_dict())


# --- datasets ------------------------------------------------------------------------------


async def list_datasets(request: Request, gw: Gateway) -> Response:
    return JSONResponse(gw.store.datasets())


async def create_dataset(request: Request, gw: Gateway) -> Response:
    body = await _json_object(request)
    for field in body:
        if field not in ("name", "modality"):
            raise InvalidField(field, f"{field} is not a dataset field")
    name = body.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        raise InvalidField("name", "name is required: a string of 1-200 characters")
    modality = body.get("modality", "image")
    if modality not in MODALITIES:
        raise InvalidField("modality", f"modality must be one of {', '.join(MODALITIES)}")
    return JSONResponse(gw.store.create_dataset(name.strip(), modality), status_code=201)


def _dataset_or_404(gw: Gateway, dataset_id: str) -> dict[str, Any]:
    ds = gw.store.dataset(dataset_id)
    if ds is None:
        raise NotFound(f"no dataset {dataset_id}")
    return ds


async def get_dataset(request: Request, gw: Gateway) -> Response:
    return JSONResponse(_dataset_or_404(gw, request.path_params["id"]))


async def delete_dataset(request: Request, gw: Gateway) -> Response:
    if not gw.store.delete_dataset(request.path_params["id"]):
        raise NotFound(f"no dataset {request.path_params['id']}")
    return Response(status_code=204)


async def add_items(request: Request, gw: Gateway) -> Response:
    ds = _dataset_or_404(gw, request.path_params["id"])
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"body is over {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    items = parse_upload(body, ctype)
    need = "image_base64" if ds["modality"] == "image" else "text"
    for i, it in enumerate(items):
        if (it["media"] if need == "image_base64" else it["text"]) is None:
            raise InvalidField(
                f"items[{i}].{need}", f"items[{i}].{need} is required in a {ds['modality']} dataset"
            )
    if gw.store.add_items(ds["id"], items) < 0:
        raise NotFound(f"no dataset {ds['id']}")
    return JSONResponse(
        {"added": len(items), "item_count": _dataset_or_404(gw, ds["id"])["item_count"]}, status_code=201
    )


async def export_labeled(request: Request, gw: Gateway) -> Response:
    fmt = request.query_params.get("fmt", "json")
    if fmt not in EXPORT_TYPES:
        raise InvalidField("fmt", "fmt must be one of csv, json, jsonl")
    ds = _dataset_or_404(gw, request.path_params["id"])
    rows = (_export_row(r) for r in gw.store.labeled(ds["id"]))
    body = {"csv": _csv, "json": _json, "jsonl": _jsonl}[fmt](rows)
    name = f"labeled-{ds['id']}.{fmt}"
    return StreamingResponse(
        _aiter(body),
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _export_row(r: dict[str, Any]) -> dict[str, Any]:
    return {**{k: r[k] for k in EXPORT_FIELDS}, "agreement": round(float(r["agreement"]), 2)}


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_FIELDS)
    for r in rows:
        writer.writerow([csv_cell(r[k]) for k in EXPORT_FIELDS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def _json(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for i, r in enumerate(rows):
        yield ("," if i else "") + json.dumps(r)
    yield "]"


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for r in rows:
        yield json.dumps(r) + "\n"


async def _aiter(chunks: Iterator[str]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk.encode()


# --- api keys ------------------------------------------------------------------------------


def _public_key(k: dict[str, Any]) -> dict[str, Any]:
    return {
        f: k[f] for f in ("id", "label", "key_prefix", "datasets", "sample_rate", "created_at", "revoked_at")
    }


async def list_keys(request: Request, gw: Gateway) -> Response:
    return JSONResponse([_public_key(k) for k in gw.store.api_keys()])


async def create_key(request: Request, gw: Gateway) -> Response:
    body = await _json_object(request)
    for field in body:
        if field not in ("label", "datasets", "sample_rate"):
            raise InvalidField(field, f"{field} is not an API-key field")
    label = body.get("label")
    if not isinstance(label, str) or not 0 < len(label) <= 200:
        raise InvalidField("label", "label is required: a string of 1-200 characters")
    datasets = body.get("datasets", [])
    if (
        not isinstance(datasets, list)
        or not all(isinstance(d, str) for d in datasets)
        or len(datasets) > 1000
    ):
        raise InvalidField("datasets", "datasets must be an array of dataset ids")
    missing = sorted(set(datasets) - gw.store.existing_datasets(datasets)) if datasets else []
    if missing:
        raise InvalidField("datasets", f"datasets names unknown dataset ids: {', '.join(missing[:5])}")
    rate = body.get("sample_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise InvalidField("sample_rate", "sample_rate must be a number between 0.0 and 1.0")
    raw = "hg_" + "".join(secrets.choice(BASE62) for _ in range(32))
    key = gw.store.create_key(
        label, hashlib.sha256(raw.encode()).hexdigest(), raw[:5], list(dict.fromkeys(datasets)), float(rate)
    )
    gw.reload_keys()
    out = {f: key[f] for f in ("id", "label", "key_prefix")} | {"raw_key": raw}
    out |= {"datasets": key["datasets"], "sample_rate": key["sample_rate"], "created_at": key["created_at"]}
    return JSONResponse(out, status_code=201)


async def revoke_key(request: Request, gw: Gateway) -> Response:
    if not gw.store.revoke_key(request.path_params["id"]):
        raise NotFound(f"no API key {request.path_params['id']}")
    gw.reload_keys()
    return Response(status_code=204)


# --- proxy rules ---------------------------------------------------------------------------


def _public_rule(r: dict[str, Any]) -> dict[str, Any]:
    return {f: r[f] for f in ("id", "pattern", "match_type", "priority", "enabled", "action")}


async def list_rules(request: Request, gw: Gateway) -> Response:
    return JSONResponse([_public_rule(r) for r in gw.store.rules()])


async def create_rule(request: Request, gw: Gateway) -> Response:
    given = validate_rule(await _json_object(request), partial=False)
    fields: dict[str, Any] = {"priority": 0, "enabled": True, "action": "allow"} | given
    check_rule_pattern(fields["match_type"], fields["pattern"])
    rule = gw.store.create_rule(fields)
    gw.reload_rules()
    return JSONResponse(_public_rule(rule), status_code=201)


async def patch_rule(request: Request, gw: Gateway) -> Response:
    rule_id = request.path_params["id"]
    changes = validate_rule(await _json_object(request), partial=True)
    current = next((r for r in gw.store.rules() if r["id"] == rule_id), None)
    if current is None:
        raise NotFound(f"no proxy rule {rule_id}")
    merged = current | changes
    check_rule_pattern(merged["match_type"], merged["pattern"])
    rule = gw.store.update_rule(rule_id, changes)
    if rule is None:
        raise NotFound(f"no proxy rule {rule_id}")
    gw.reload_rules()
    return JSONResponse(_public_rule(rule))


async def delete_rule(request: Request, gw: Gateway) -> Response:
    if not gw.store.delete_rule(request.path_params["id"]):
        raise NotFound(f"no proxy rule {request.path_params['id']}")
    gw.reload_rules()
    return Response(status_code=204)


# --- ml ------------------------------------------------------------------------------------


async def ml_status(request: Request, gw: Gateway) -> Response:
    return JSONResponse(gw.ml_status())


async def ml_train(request: Request, gw: Gateway) -> Response:
    gw.start_training()
    return JSONResponse({"status": "training_started"})


def routes() -> list[Route]:
    p = "/dashboard/api"
    up = ("application/json", "application/x-ndjson", "application/jsonl")
    return [
        Route(f"{p}/metrics", endpoint(metrics), methods=["GET"]),
        Route(f"{p}/config", endpoint(get_config), methods=["GET"]),
        Route(f"{p}/config", endpoint(post_config, write=True), methods=["POST"]),
        Route(f"{p}/item-datasets", endpoint(list_datasets), methods=["GET"]),
        Route(f"{p}/item-datasets", endpoint(create_dataset, write=True), methods=["POST"]),
        Route(f"{p}/item-datasets/{{id}}", endpoint(get_dataset), methods=["GET"]),
        Route(f"{p}/item-datasets/{{id}}", endpoint(delete_dataset, write=True), methods=["DELETE"]),
        Route(
            f"{p}/item-datasets/{{id}}/items",
            endpoint(add_items, write=True, body_types=up),
            methods=["POST"],
        ),
        Route(f"{p}/item-datasets/{{id}}/labeled/export", endpoint(export_labeled), methods=["GET"]),
        Route(f"{p}/apikeys", endpoint(list_keys), methods=["GET"]),
        Route(f"{p}/apikeys", endpoint(create_key, write=True), methods=["POST"]),
        Route(f"{p}/apikeys/{{id}}", endpoint(revoke_key, write=True), methods=["DELETE"]),
        Route(f"{p}/proxy-rules", endpoint(list_rules), methods=["GET"]),
        Route(f"{p}/proxy-rules", endpoint(create_rule, write=True), methods=["POST"]),
        Route(f"{p}/proxy-rules/{{id}}", endpoint(patch_rule, write=True), methods=["PATCH"]),
        Route(f"{p}/proxy-rules/{{id}}", endpoint(delete_rule, write=True), methods=["DELETE"]),
        Route(f"{p}/ml/status", endpoint(ml_status), methods=["GET"]),
        Route(
            f"{p}/ml/train",
            endpoint(ml_train, write=True, body_types=("application/json", "")),
            methods=["POST"],
        ),
    ]
