"""The one guard on URLs the core calls: webhooks, https manifests, S3 endpoints.

A customer names the URL, the core calls it: without this check a webhook could make the core
POST to its own loopback services, the private network it runs in, or a cloud metadata endpoint
(169.254.169.254). Every address the host resolves to must be public, since the HTTP client may
connect to any of them.

The URL is parsed once, by the domain's strict parser (asg_grpc/domain/urls.py), and its host
resolved by the resolver the client's connections use (`UrlGuard` is that resolver). The
addresses a check accepted are pinned for the connection that follows, so a DNS answer that
changes between check and connect (rebinding) changes nothing; a host resolved without a check
keeps only its public addresses. An http:// webhook or manifest URL passes only in development
mode (ASG_DEV_MODE), naming a loopback host, and then reaches loopback addresses only; https is
checked the same in either mode. S3 `endpoint_url`s may be http:// anywhere the address rules
allow. Known limit: those are reached through botocore, whose connections are checked only
before (docs/jobs.md).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.urls import call_url_rule, is_loopback_host, parse_url

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


def _is_loopback(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _address(result: ResolveResult) -> IPAddress:
    # IPv6 answers may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
    return ipaddress.ip_address(str(result["host"]).split("%", 1)[0])


class NoPublicAddress(OSError):
    """Raised inside aiohttp's connect; it reaches callers as ClientConnectorDNSError.os_error."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to no public address")


PIN_SECONDS = 60.0  # how long the addresses a check accepted serve the connections to that host


class UrlGuard(AbstractResolver):
    """Checks URLs, and resolves for the connections of the client it is the resolver of.

    One per client (webhook deliveries, manifest reads). `dns` is the system's resolver unless
    given (tests give a scripted one: DNS is the machine's edge). With `allow_private`
    (ASG_ALLOW_PRIVATE_URLS) no address is refused, but checked ones are pinned all the same.
    With `dev_mode` (ASG_DEV_MODE) an http:// URL to a loopback host passes, its host resolving
    to loopback addresses only; without it an http:// URL is refused.
    """

    def __init__(
        self, allow_private: bool, dns: AbstractResolver | None = None, *, dev_mode: bool = False
    ) -> None:
        self._allow_private = allow_private
        self._dev_mode = dev_mode
        self._dns = dns or ThreadedResolver()
        self._pins: dict[tuple[str, int], tuple[float, list[ResolveResult]]] = {}

    async def check(self, url: str, field: str = "callback_url", *, http_anywhere: bool = False) -> None:
        """Raise PrivateURL (a ValidationError naming `field`) unless the URL parses and every
        address its host resolves to is public; pin those addresses for its connection.
        `http_anywhere`: an S3 endpoint, whose http:// is held to the address rules only."""
        parsed = parse_url(url, ("http", "https"))
        if parsed is None:
            raise PrivateURL(field, "is not a valid URL")
        loopback_only = parsed.scheme == "http" and not http_anywhere
        if loopback_only and not (self._dev_mode and is_loopback_host(parsed.host)):
            raise PrivateURL(field, call_url_rule(url, self._dev_mode))
        try:
            literal: IPAddress | None = ipaddress.ip_address(parsed.host)
        except ValueError:
            literal = None
        if literal is not None:  # the client connects to it without resolving
            self._refuse(field, [literal], loopback_only)
            return
        try:
            results = await self._dns.resolve(parsed.host, parsed.port, socket.AF_UNSPEC)
        except (OSError, UnicodeError) as exc:
            raise PrivateURL(field, f"host {parsed.host} does not resolve") from exc
        if not results:
            raise PrivateURL(field, f"host {parsed.host} does not resolve")
        self._refuse(field, [_address(r) for r in results], loopback_only)
        now = time.monotonic()
        self._pins = {key: pin for key, pin in self._pins.items() if pin[0] > now}
        self._pins[(parsed.host, parsed.port)] = (now + PIN_SECONDS, results)

    def _refuse(self, field: str, addresses: list[IPAddress], loopback_only: bool) -> None:
        if loopback_only:  # development mode's http://: never off the machine
            for addr in addresses:
                if not _is_loopback(addr):
                    raise PrivateURL(field, f"is http:// and resolves to a non-loopback address ({addr})")
            return
        if self._allow_private:
            return
        for addr in addresses:
            if not is_public(addr):
                raise PrivateURL(field, f"resolves to a private or loopback address ({addr})")

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """For the client's connections: the pinned addresses of a checked host, else what DNS
        answers, public addresses only (unless private ones are allowed)."""
        pin = self._pins.get((host.lower(), port))
        if pin is not None and pin[0] > time.monotonic():
            return [r for r in pin[1] if family == socket.AF_UNSPEC or r["family"] == family]
        results = await self._dns.resolve(host, port, family)
        if self._allow_private:
            return results
        if self._dev_mode and is_loopback_host(host.lower()):
            loopback = [r for r in results if _is_loopback(_address(r))]
            if loopback:
                return loopback
        public = [r for r in results if is_public(_address(r))]
        if not public:
            raise NoPublicAddress(host)
        return public

    async def close(self) -> None:
        await self._dns.close()

    def connector(self, **options: Any) -> aiohttp.TCPConnector:
        """A connector resolving through this guard. aiohttp's own DNS cache is off: the guard
        decides what each connection reaches."""
        return aiohttp.TCPConnector(resolver=self, use_dns_cache=False, **options)


async def check_public_url(
    url: str,
    allow_private: bool,
    field: str = "callback_url",
    *,
    dev_mode: bool = False,
    http_anywhere: bool = False,
) -> None:
    """Check a URL the core will call later (at registration): nothing is pinned. With
    `allow_private` (ASG_ALLOW_PRIVATE_URLS) nothing is checked but a webhook or manifest
    http:// URL's host, which must be loopback (`dev_mode`, ASG_DEV_MODE)."""
    if not allow_private or (url[:7].lower() == "http://" and not http_anywhere):
        await UrlGuard(allow_private, dev_mode=dev_mode).check(url, field, http_anywhere=http_anywhere)
