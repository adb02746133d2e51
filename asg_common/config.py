"""What the processes share about settings: secret fields, and the masked view a log shows.

A setting marked with `secret()` never appears in a repr, and `masked()` shows it as `***`
(or None when unset), so the one banner line each process logs at start says which settings
are in force without ever carrying a key, a token or a WIF.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MASK = "***"
_SECRET = "secret"


def secret() -> Any:
    """A dataclass field for a secret: None by default, left out of repr, masked by masked()."""
    return dataclasses.field(default=None, repr=False, metadata={_SECRET: True})


def masked(settings: Any) -> Any:
    """`settings` (a dataclass, possibly nesting others, dicts of them, or lists) as plain data
    for a log line, each secret field replaced by MASK when set."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return {
            f.name: _field(getattr(settings, f.name), f.metadata.get(_SECRET, False))
            for f in dataclasses.fields(settings)
        }
    if isinstance(settings, dict):
        return {str(k): masked(v) for k, v in settings.items()}
    if isinstance(settings, list | tuple):
        return [masked(v) for v in settings]
    if isinstance(settings, str | int | float | bool) or settings is None:
        return settings
    return str(settings)


def _field(value: Any, is_secret: bool) -> Any:
    if is_secret:
        return None if value is None else MASK
    return masked(value)
