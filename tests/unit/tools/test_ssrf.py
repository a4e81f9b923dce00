"""The SSRF guard's decisions. Nothing here opens a connection: addresses are judged, not contacted,
and host names resolve through injected resolvers."""

from __future__ import annotations

import ipaddress

import pytest

from fathom.tools.ssrf import (
    AllowList,
    BlockedURLError,
    SSRFGuard,
    UnresolvableHostError,
    check_url,
    forbidden_reason,
    is_forbidden_address,
    parse_ip_host,
)


def resolver_for(table: dict[str, list[str]]):
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in table:
            raise UnresolvableHostError(f"could not resolve host {host!r}")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


PUBLIC = resolver_for({"example.com": ["93.184.216.34"], "dual.example": ["93.184.216.34", "2606:2800:220:1::"]})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1", "loopback"),
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://[::1]", "loopback"),
        ("http://[::1]:9000/", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/latest", "cloud metadata"),
        ("http://0x7f000001", "loopback"),
        ("http://2130706433", "loopback"),
        ("http://0177.0.0.1", "loopback"),
        ("http://127.1", "loopback"),
        ("http://[::ffff:127.0.0.1]", "IPv4-mapped"),
        ("http://[::ffff:8.8.8.8]", "IPv4-mapped"),
        ("http://10.0.0.1", "private"),
        ("http://172.16.5.4", "private"),
        ("http://192.168.1.1", "private"),
        ("http://100.64.0.1", "carrier-grade NAT"),
        ("http://100.100.100.200/latest", "cloud metadata"),
        ("http://0.0.0.0", "unspecified"),
        ("http://[::]", "unspecified"),
        ("http://224.0.0.1", "multicast"),
        ("http://240.0.0.1", "reserved"),
        ("http://[2002:7f00:1::]", "embeds 127.0.0.1"),  # 6to4 wrapping loopback
        ("http://[64:ff9b::a00:1]", "embeds 10.0.0.1"),  # NAT64 wrapping a private address
        ("http://localhost:8000", "internal host name"),
        ("http://metadata.google.internal/computeMetadata/v1/", "internal host name"),
        ("http://printer.local/", "internal host name"),
    ],
)
async def test_internal_urls_are_refused(url: str, reason: str) -> None:
    resolver = resolver_for({})
    with pytest.raises(BlockedURLError, match=reason):
        await check_url(url, resolver=resolver)
    assert resolver.calls == []  # decided from the URL alone


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "file: is not allowed"),
        ("gopher://127.0.0.1:70/_GET", "gopher: is not allowed"),
        ("ftp://example.com/file", "ftp: is not allowed"),
        ("javascript:alert(1)", "javascript: is not allowed"),
        ("//example.com/path", "without a scheme"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "invalid URL"),
    ],
)
async def test_non_http_and_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(BlockedURLError, match=message):
        await check_url(url, resolver=PUBLIC)


async def test_public_addresses_pass() -> None:
    assert await check_url("https://example.com/page", resolver=PUBLIC) == [ipaddress.ip_address("93.184.216.34")]
    assert len(await check_url("http://dual.example/", resolver=PUBLIC)) == 2
    assert await check_url("http://8.8.8.8/", resolver=PUBLIC) == [ipaddress.ip_address("8.8.8.8")]


async def test_hostname_resolving_to_private_address_is_refused() -> None:
    resolver = resolver_for({"intranet.example": ["10.1.2.3"]})
    with pytest.raises(BlockedURLError, match=r"intranet.example resolves to 10.1.2.3, which is a private address"):
        await check_url("https://intranet.example/wiki", resolver=resolver)
    assert resolver.calls == [("intranet.example", 443)]


async def test_one_internal_address_in_a_mixed_answer_refuses_the_host() -> None:
    resolver = resolver_for({"mixed.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(BlockedURLError, match="loopback"):
        await check_url("http://mixed.example/", resolver=resolver)


async def test_unresolvable_host() -> None:
    with pytest.raises(UnresolvableHostError, match="nowhere.example"):
        await check_url("http://nowhere.example/", resolver=PUBLIC)


async def test_allow_list_opens_exactly_the_listed_host_and_port() -> None:
    guard = SSRFGuard(["127.0.0.1:8080", "intranet.example", "[::1]:9000"], resolver=resolver_for(
        {"intranet.example": ["10.1.2.3"]}))
    assert await guard.check_url("http://127.0.0.1:8080/x")
    assert await guard.check_url("http://0x7f000001:8080/x")  # same address, other spelling
    with pytest.raises(BlockedURLError, match="loopback"):
        await guard.check_url("http://127.0.0.1:8081/x")
    with pytest.raises(BlockedURLError, match="loopback"):
        await guard.check_url("http://127.0.0.1/x")  # port 80 is not 8080
    assert await guard.check_url("https://intranet.example:8443/")  # a bare host opens every port
    assert await guard.check_url("http://[::1]:9000/")
    with pytest.raises(BlockedURLError):
        await guard.check_url("http://[::1]:9001/")


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(["Example.COM", "10.0.0.5:8080", "[::1]:9000", "::1", " "])
    assert allow.allows("example.com", 443)
    assert allow.allows("EXAMPLE.com.", 80)
    assert allow.allows("10.0.0.5", 8080) and not allow.allows("10.0.0.5", 8081)
    assert allow.allows("::1", 1234)  # the bare "::1" entry
    with pytest.raises(ValueError, match="invalid port"):
        AllowList.parse(["host:http"])


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("1.2.3.4.example.com", None),
        ("deadbeef", None),
    ],
)
def test_ip_spellings_are_normalised(host: str, expected: str | None) -> None:
    ip = parse_ip_host(host)
    assert (str(ip) if ip is not None else None) == expected


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "100.64.0.1", "168.63.129.16",
     "::ffff:10.0.0.1", "192.0.2.1", "198.18.0.1", "255.255.255.255"],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)
    assert forbidden_reason(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_not_forbidden(address: str) -> None:
    assert not is_forbidden_address(address)
