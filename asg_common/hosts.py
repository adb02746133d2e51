"""Which hosts are this machine's own: the one rule the core's URL guard (development mode lets
http:// reach only these) and the worker agent (a token may travel without TLS only to these)
share. Stdlib only, so that the core's pure domain may import it too (tests/core/test_layering.py)."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """`localhost`, or a literal of 127.0.0.0/8 or ::1 (brackets of an IPv6 literal allowed)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
