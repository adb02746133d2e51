"""Structured logs: one JSON object per line on stderr, so they can be grepped and shipped.

Every line carries the `request_id` of the request being served (set by the gateway's
middleware and by the core's interceptor from gRPC metadata), and every string in it is
redacted once here: bearer tokens, API-key-looking tokens, secret/token/password fields and
URL query strings (a task's signed data_url, a webhook's URL) never reach a log."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

# The id of the request this task is serving; "" outside one.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
REQUEST_ID_HEADER = "x-request-id"  # HTTP header and gRPC metadata key alike
MAX_REQUEST_ID = 128


def valid_request_id(value: str) -> bool:
    """A caller's id worth keeping: 1 to 128 printable ASCII characters, no spaces."""
    return 0 < len(value) <= MAX_REQUEST_ID and all("\x20" < c < "\x7f" for c in value)

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+")
_KEYLIKE = re.compile(r"\b(?:sk|pk|ak|key|asg)_[A-Za-z0-9_\-]{8,}")
_FIELD = re.compile(
    r"(?i)([\"']?\b\w*(?:secret|token|password|api_key|apikey)\w*[\"']?\s*[=:]\s*)([\"']?)[^\s\"',;&}]+"
)
_QUERY = re.compile(r"(https?://[^\s?#\"']*)\?[^\s#\"']*")
_SENSITIVE_KEY = re.compile(r"(?i)secret|token|password|api_key|apikey|authorization")


def redact(text: str) -> str:
    """`text` with anything that looks like a credential or a URL query replaced."""
    text = _QUERY.sub(r"\1?<redacted>", text)
    text = _BEARER.sub(r"\1 <redacted>", text)
    text = _FIELD.sub(r"\1\2<redacted>", text)
    return _KEYLIKE.sub("<redacted>", text)


MASK = "***"  # what Settings' banner shows for a secret: already clean


def _clean(key: str, value: Any) -> Any:
    """An extra field, redacted; mappings and sequences (the settings banner) keep their shape."""
    if _SENSITIVE_KEY.search(key):
        return MASK if value == MASK else "<redacted>"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(key, v) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        entry.update({k: _clean(k, v) for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
