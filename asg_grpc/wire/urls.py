"""Refuse URLs the server would call when their host resolves to a non-public address.

A customer names the URL, the core calls it: without this check a webhook could make the core
POST to its own loopback services, the private network it runs in, or a cloud metadata endpoint
(169.254.169.254). Every address the host resolves to must be public, since the HTTP client may
connect to any of them.

The host is resolved again when the request connects, so a DNS answer that changes between the
check and the connection (rebinding) could slip through; `guarded_connector` closes that for the
aiohttp clients (webhook deliveries, https manifests) by checking the very addresses a
connection is about to use. Known limit: S3 `endpoint_url`s are reached through botocore, whose
connections are checked only before (docs/jobs.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from asg_grpc.domain.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` in Python 3.11 lets through but that must not be called.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "192.88.99.0/24",  # former 6to4 relay anycast (RFC 7526)
        "fec0::/10",  # deprecated site-local (RFC 3879)
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
    )
)


class PrivateURL(ValidationError):
    """The URL's host is missing, does not resolve, or resolves to a non-public address."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)


def is_public(addr: IPAddress) -> bool:
    """Whether `addr` is a globally routable unicast address."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour  # ::ffff:a.b.c.d, 2002:aabb:ccdd::
        if embedded is not None:
            return is_public(embedded)
    if (
        not addr.is_global
        or addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
    ):
        return False
    return not any(addr.version == net.version and addr in net for net in _EXTRA_BLOCKED)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # IPv6 answers may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_public_url(url: str, allow_private: bool, field: str = "callback_url") -> None:
    """Raise PrivateURL (a ValidationError naming `field`) unless every address the URL's host
    resolves to is public. With `allow_private` (ASG_ALLOW_PRIVATE_URLS) nothing is checked."""
    if allow_private:
        return
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PrivateURL(field, "is not a valid URL") from exc
    if not host:
        raise PrivateURL(field, "has no host")
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise PrivateURL(field, f"host {host} does not resolve") from exc
    if not addresses:
        raise PrivateURL(field, f"host {host} does not resolve")
    for addr in addresses:
        if not is_public(addr):
            raise PrivateURL(field, f"resolves to a private or loopback address ({addr})")


class NoPublicAddress(OSError):
    """Raised inside aiohttp's connect; it reaches callers as ClientConnectorDNSError.os_error."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to no public address")


class PublicOnlyResolver(ThreadedResolver):
    """Resolves as aiohttp does, then keeps only public addresses: the addresses checked are
    the ones the connection uses, so a DNS answer that changed since `check_public_url` cannot
    reach a private one. (An IP-literal URL is not resolved; `check_public_url` covers it.)"""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        public = [r for r in results if is_public(ipaddress.ip_address(str(r["host"]).split("%", 1)[0]))]
        if not public:
            raise NoPublicAddress(host)
        return public


def guarded_connector(allow_private: bool, **options: Any) -> aiohttp.TCPConnector:
    """A connector for clients that call customer-given URLs."""
    return aiohttp.TCPConnector(resolver=None if allow_private else PublicOnlyResolver(), **options)
