"""The item upload extension (`POST /dashboard/api/item-datasets/{id}/items`): parse and check
a JSON array (or `{"items": [...]}`) or JSONL body into rows for the store. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from asg_challenge.errors import BadRequest, InvalidField, PayloadTooLarge

MAX_ITEMS = 5000
MAX_MEDIA = 512 * 1024
MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
FIELDS = {"question", "text", "image_base64", "media_type", "options", "gold_label", "external_id"}
DEFAULT_QUESTION = "Which label fits?"


def parse_upload(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Rows ready for Store.add_items, or the first problem naming `items[i].field`."""
    if content_type in ("application/x-ndjson", "application/jsonl"):
        try:
            raw: Any = [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError as exc:
            raise BadRequest(f"body is not valid JSONL: {exc}") from exc
    else:
        try:
            raw = json.loads(body)
        except ValueError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from exc
        if isinstance(raw, dict) and set(raw) == {"items"}:
            raw = raw["items"]
    if not isinstance(raw, list):
        raise InvalidField("items", "items must be a JSON array of item objects (or JSONL)")
    if not raw:
        raise InvalidField("items", "items must hold at least one item")
    if len(raw) > MAX_ITEMS:
        raise PayloadTooLarge(f"items holds {len(raw)} items; at most {MAX_ITEMS} per upload")
    return [_item(i, it) for i, it in enumerate(raw)]


def parse_item(it: Any) -> dict[str, Any]:
    """One item (a marketplace task's mirror) checked by the upload's rules."""
    return _item(0, it)


def _item(i: int, it: Any) -> dict[str, Any]:
    at = f"items[{i}]"
    if not isinstance(it, dict):
        raise InvalidField(at, f"{at} must be an object")
    for field in it:
        if field not in FIELDS:
            raise InvalidField(f"{at}.{field}", f"{at}.{field} is not an item field")
    options = it.get("options")
    if (
        not isinstance(options, list) or not 2 <= len(options) <= 10
        or not all(isinstance(o, str) and 0 < len(o) <= 200 for o in options)
        or len(set(options)) != len(options)
    ):  # fmt: skip
        raise InvalidField(f"{at}.options", f"{at}.options must be 2 to 10 distinct strings of 1-200 chars")
    question = it.get("question", DEFAULT_QUESTION)
    if not isinstance(question, str) or not 0 < len(question) <= 500:
        raise InvalidField(f"{at}.question", f"{at}.question must be a string of 1-500 chars")
    text = it.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > 10_000):
        raise InvalidField(f"{at}.text", f"{at}.text must be a string of at most 10000 chars")
    media = None
    media_type = None
    if it.get("image_base64") is not None:
        try:
            media = base64.b64decode(str(it["image_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidField(f"{at}.image_base64", f"{at}.image_base64 is not valid base64") from exc
        if len(media) > MAX_MEDIA:
            raise InvalidField(f"{at}.image_base64", f"{at}.image_base64 is over {MAX_MEDIA} bytes")
        media_type = it.get("media_type", "image/png")
        if media_type not in MEDIA_TYPES:
            raise InvalidField(f"{at}.media_type", f"{at}.media_type must be one of {', '.join(MEDIA_TYPES)}")
    if text is None and media is None:
        raise InvalidField(f"{at}.text", f"{at} needs text or image_base64")
    gold = it.get("gold_label")
    if gold is not None and gold not in options:
        raise InvalidField(f"{at}.gold_label", f"{at}.gold_label must be one of its options")
    ext = it.get("external_id")
    if ext is not None and (not isinstance(ext, str) or len(ext) > 200):
        raise InvalidField(f"{at}.external_id", f"{at}.external_id must be a string of at most 200 chars")
    return {
        "question": question, "text": text, "media": media, "media_type": media_type,
        "options": options, "gold_label": gold, "external_id": ext,
    }  # fmt: skip
