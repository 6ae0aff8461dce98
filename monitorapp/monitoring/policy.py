"""The outbound-request policy: which addresses the server may fetch.

Monitored URLs are user input that the server fetches, so every address a
host name resolves to is checked against the blocked ranges before anything
connects. Self-hosters who monitor their own LAN open named networks with
`ALLOWED_PRIVATE_NETWORKS`; nothing else is ever opened.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        # IPv4
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # CGNAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast 255.255.255.255
        # IPv6
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # NAT64 local-use
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, …)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local (ULA)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

Resolver = Callable[[str, int], Sequence[str]]


class BlockedAddress(Exception):
    """The host names or resolves to an address the policy forbids."""


class ResolutionFailed(Exception):
    """The host name did not resolve."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in a mapped, compatible, NAT64 or 6to4 IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = address.packed
    if packed[:12] == bytes(12):  # ::a.b.c.d, IPv4-compatible
        return ipaddress.IPv4Address(packed[12:])
    if packed[:12] == bytes.fromhex("0064ff9b0000000000000000"):  # 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def is_allowed_address(address: IPAddress | str, allowed: Iterable[IPNetwork] = ()) -> bool:
    """True if the policy lets the server connect to `address`."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    allowed = tuple(allowed)
    if any(address.version == network.version and address in network for network in allowed):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        # An allow-listed IPv4 network is not opened through an IPv6 disguise.
        if embedded is not None and not embedded.is_global:
            return False
    if any(address.version == network.version and address in network for network in BLOCKED_NETWORKS):
        return False
    return address.is_global


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, via the system resolver (one lookup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(str(exc)) from None
    addresses = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def resolve_allowed(
    host: str,
    port: int,
    allowed: Iterable[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> list[str]:
    """Resolve `host` once and return its addresses, or raise if any is blocked.

    Every answer must pass: a name that resolves to one public and one private
    address is refused, as the connection could be steered to either.
    """
    allowed = tuple(allowed)
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else list(resolver(host, port))
    if not addresses:
        raise ResolutionFailed(f"{host} has no addresses")
    for address in addresses:
        if not is_allowed_address(address, allowed):
            raise BlockedAddress(
                f"{host} resolves to {address}, a private or reserved address that monitors may not reach"
            )
    return addresses
