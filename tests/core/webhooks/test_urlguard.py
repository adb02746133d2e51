"""The URL guard: every resolved address must be public, unless private URLs are allowed, and a
connection reaches the addresses its check accepted."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from asg_grpc.domain.errors import ValidationError
from asg_grpc.wire.urls import NoPublicAddress, PrivateURL, UrlGuard, check_public_url, is_public

REFUSED = [
    "127.0.0.1",  # loopback
    "127.8.9.10",
    "10.1.2.3",  # RFC 1918
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "169.254.169.254",  # link-local, cloud metadata
    "169.254.0.1",
    "0.0.0.0",  # unspecified
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::1",  # 6to4 around 10.0.0.1
    "2001:db8::1",  # documentation
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_is_public_refuses_non_public_ranges(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_is_public_accepts_public_unicast(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:8443/hook"


@pytest.mark.asyncio
@pytest.mark.parametrize("address", REFUSED)
async def test_check_refuses_literal_private_addresses(address: str) -> None:
    with pytest.raises(PrivateURL) as info:
        await check_public_url(_url(address), allow_private=False)
    assert isinstance(info.value, ValidationError)
    assert info.value.field == "callback_url"
    assert "private or loopback" in info.value.message


@pytest.mark.asyncio
@pytest.mark.parametrize("address", PUBLIC)
async def test_check_accepts_literal_public_addresses(address: str) -> None:
    await check_public_url(_url(address), allow_private=False)


@pytest.mark.asyncio
async def test_check_refuses_localhost_by_name() -> None:
    with pytest.raises(PrivateURL, match="private or loopback"):
        await check_public_url("https://localhost/hook", allow_private=False)


@pytest.mark.asyncio
async def test_check_allows_everything_when_private_urls_are_allowed() -> None:
    await check_public_url("https://127.0.0.1/hook", allow_private=True)
    await check_public_url("https://169.254.169.254/latest/meta-data", allow_private=True)


@pytest.mark.asyncio
async def test_check_names_the_field_it_is_given() -> None:
    with pytest.raises(PrivateURL) as info:
        await check_public_url("https://10.0.0.1/", allow_private=False, field="manifest_url")
    assert info.value.field == "manifest_url"


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["https:///nohost", "https://[::1/broken"])
async def test_check_refuses_urls_without_a_usable_host(url: str) -> None:
    with pytest.raises(PrivateURL):
        await check_public_url(url, allow_private=False)


@pytest.mark.asyncio
async def test_check_refuses_a_host_that_does_not_resolve() -> None:
    with pytest.raises(PrivateURL, match="does not resolve"):
        await check_public_url("https://no-such-host.invalid/hook", allow_private=False)


@pytest.mark.asyncio
async def test_connections_refuse_a_name_that_resolves_privately_when_they_are_made() -> None:
    """DNS rebinding: a name that passed the check and then resolves to loopback is refused by
    the connector itself, on the addresses it is about to connect to."""
    async with aiohttp.ClientSession(connector=UrlGuard(False).connector()) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get("http://localhost:9/")
    assert isinstance(info.value.os_error, NoPublicAddress)


@pytest.mark.asyncio
async def test_the_guarded_connector_lets_private_addresses_through_when_allowed() -> None:
    async with aiohttp.ClientSession(connector=UrlGuard(True).connector()) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get("http://localhost:9/")  # nothing listens on port 9
    assert not isinstance(info.value.os_error, NoPublicAddress)


class ScriptedDNS(AbstractResolver):
    """DNS, the machine's edge: each lookup of a name gets the next of its scripted answers."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.answers[host].pop(0)
        return [
            ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


@pytest_asyncio.fixture
async def server_port() -> AsyncIterator[int]:
    """An HTTP server on 127.0.0.1 only (not on 127.0.0.2, though that is loopback too)."""

    async def reached(_request: web.Request) -> web.Response:
        return web.Response(text="reached")

    app = web.Application()
    app.router.add_get("/h", reached)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.mark.asyncio
async def test_a_connection_reaches_the_address_its_check_accepted(server_port: int) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked, 127.0.0.2 afterwards; the
    connection still goes to 127.0.0.1 (where the server listens), without asking DNS again."""
    dns = ScriptedDNS({"hook.test": ["127.0.0.1", "127.0.0.2"]})
    guard = UrlGuard(allow_private=True, dns=dns)
    url = f"http://hook.test:{server_port}/h"
    await guard.check(url, "callback_url", http_anywhere=True)  # http:// as an S3 endpoint may
    async with aiohttp.ClientSession(connector=guard.connector()) as session, session.get(url) as reply:
        assert (reply.status, await reply.text()) == (200, "reached")
    assert dns.lookups == ["hook.test"]


@pytest.mark.asyncio
async def test_the_check_refuses_a_name_whose_answer_is_private() -> None:
    guard = UrlGuard(allow_private=False, dns=ScriptedDNS({"hook.test": ["10.0.0.7"]}))
    with pytest.raises(PrivateURL, match=r"private or loopback address \(10.0.0.7\)") as info:
        await guard.check("https://hook.test/h", "manifest_url")
    assert info.value.field == "manifest_url"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url", ["https://127.0.0.1\\@1.1.1.1/h", "https://u@1.1.1.1/h", "https://1.1.1.1%0a/h", "ftp://1.1.1.1/"]
)
async def test_the_check_refuses_what_the_parser_does_not_accept(url: str) -> None:
    with pytest.raises(PrivateURL, match="is not a valid URL"):
        await UrlGuard(allow_private=True).check(url, "callback_url")


# development mode (ASG_DEV_MODE): http:// to loopback only ------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["http://127.0.0.1:8099/hook", "http://127.3.2.1/h", "http://[::1]:9/h"])
async def test_dev_mode_lets_http_reach_a_loopback_literal(url: str) -> None:
    await UrlGuard(allow_private=False, dev_mode=True).check(url, "callback_url")
    await check_public_url(url, allow_private=False, dev_mode=True)


@pytest.mark.asyncio
async def test_dev_mode_http_localhost_must_resolve_to_loopback_only() -> None:
    good = UrlGuard(allow_private=False, dns=ScriptedDNS({"localhost": ["127.0.0.1"]}), dev_mode=True)
    await good.check("http://localhost:8099/hook", "callback_url")
    bad = UrlGuard(allow_private=True, dns=ScriptedDNS({"localhost": ["10.0.0.7"]}), dev_mode=True)
    with pytest.raises(PrivateURL, match=r"non-loopback address \(10.0.0.7\)"):
        await bad.check("http://localhost/hook", "callback_url")


@pytest.mark.asyncio
@pytest.mark.parametrize("allow_private", [False, True])
async def test_dev_mode_refuses_http_to_any_other_host(allow_private: bool) -> None:
    guard = UrlGuard(allow_private=allow_private, dev_mode=True)
    for url in ("http://10.0.0.1/h", "http://1.1.1.1/h", "http://example.com/h"):
        with pytest.raises(PrivateURL, match="loopback host") as info:
            await guard.check(url, "manifest_url")
        assert info.value.field == "manifest_url"


@pytest.mark.asyncio
@pytest.mark.parametrize("allow_private", [False, True])
async def test_without_dev_mode_http_is_refused_even_to_loopback(allow_private: bool) -> None:
    with pytest.raises(PrivateURL, match=r"must be an https URL .*ASG_DEV_MODE"):
        await UrlGuard(allow_private=allow_private).check("http://127.0.0.1:8099/hook", "callback_url")
    with pytest.raises(PrivateURL, match="must be an https URL"):
        await check_public_url("http://127.0.0.1/h", allow_private=allow_private)


@pytest.mark.asyncio
async def test_dev_mode_leaves_https_to_the_production_rules() -> None:
    with pytest.raises(PrivateURL, match="private or loopback address"):
        await UrlGuard(allow_private=False, dev_mode=True).check("https://127.0.0.1/h", "callback_url")
