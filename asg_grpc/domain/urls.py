"""The one parser of the URLs the service is given (data, callback, manifest, S3 endpoint URLs).

Strict on purpose: what it accepts, every URL parser on the way reads the same (urllib, yarl in
aiohttp, httpx, botocore, the labelers' clients). No user-info, no backslash, no whitespace or
control character, and a host of letters, digits, `.` and `-` or a bracketed IPv6 literal. A
lenient parser is how `https://127.0.0.1\\@1.1.1.1/` passed, as host 1.1.1.1, while the delivery
client could not read it at all (issue 15, defect 6). A regex rather than urlsplit: it runs for
every task of every batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asg_common.hosts import is_loopback_host

_PORT = r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}"
_URL = re.compile(
    r"([Hh][Tt][Tt][Pp][Ss]?)://"  # scheme; nothing between it and the host (no user-info)
    r"([A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\])"  # host name or IPv4, or an IPv6 literal
    rf"(?::({_PORT}))?"  # port 0-65535
    # path, query or fragment: no whitespace (Unicode's too), control character or backslash
    r"(?:[/?#][^\s\\\x00-\x1f\x7f-\x9f]*)?",
)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class ParsedURL:
    scheme: str  # lower case
    host: str  # lower case, an IPv6 literal without its brackets
    port: int


def parse_url(value: str, schemes: tuple[str, ...] = ("https",)) -> ParsedURL | None:
    """`value`'s scheme, host and port, or None unless it is a URL of one of `schemes`."""
    match = _URL.fullmatch(value)
    if match is None:
        return None
    scheme, host, port = match[1].lower(), match[2].lower(), match[3]
    if scheme not in schemes:
        return None
    return ParsedURL(scheme, host.strip("[]"), DEFAULT_PORTS[scheme] if port is None else int(port))


def parse_call_url(value: str, dev_mode: bool) -> ParsedURL | None:
    """A URL the core will call (webhook, callback or manifest URL): https, or, in development
    mode (ASG_DEV_MODE) only, http:// to a loopback host, so a developer's local receiver needs
    no TLS. None otherwise."""
    parsed = parse_url(value, ("http", "https") if dev_mode else ("https",))
    if parsed is not None and parsed.scheme == "http" and not is_loopback_host(parsed.host):
        return None
    return parsed


def call_url_rule(value: str, dev_mode: bool, what: str = "an https URL") -> str:
    """What a refused call URL must be, said for the caller (the rule of `parse_call_url`):
    a developer's http://localhost is told of development mode."""
    if dev_mode:
        return f"must be {what}, or an http:// URL to a loopback host (development mode)"
    loopback_http = parse_url(value, ("http",))
    if loopback_http is not None and is_loopback_host(loopback_http.host):
        return f"must be {what} (http:// to a loopback host only in development mode, ASG_DEV_MODE=on)"
    return f"must be {what}"
