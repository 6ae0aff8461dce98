"""Hostile URLs: each must be refused at create/update time and at check time.

`PORT` is replaced by the canary listener's port, so a URL that slipped
through to a connection on loopback would be counted by the canary.
"""

from __future__ import annotations

# Loopback 127.0.0.1 in every spelling a resolver or URL parser accepts.
LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.1", "127.0.1", "127.000.000.001", "0177.0.0.1", "0177.0.0.01", "0x7f.0.0.1",
    "0x7f000001", "2130706433", "0x7f.1", "017700000001", "127.0.0.254", "127.255.255.255", "127.1.2.3",
    "0x7F.0x00.0x00.0x01", "127.0.0.1.", "①②⑦.⓪.⓪.①", "１２７.０.０.１", "127。0。0。1", "127．0．0．1",
]
UNSPECIFIED_AND_BROADCAST = ["0.0.0.0", "0", "0x0", "0.0.0.1", "255.255.255.255", "0xffffffff", "4294967295"]
# The edges of every blocked IPv4 range.
RANGE_EDGES = [
    "10.0.0.0", "10.0.0.1", "10.255.255.255", "012.0.0.1", "167772161",
    "100.64.0.0", "100.64.0.1", "100.127.255.255",
    "169.254.0.0", "169.254.169.254", "169.254.255.255", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376",
    "172.16.0.0", "172.16.0.1", "172.31.255.255",
    "192.0.0.1", "192.0.0.170", "192.0.2.1", "192.88.99.1",
    "192.168.0.0", "192.168.0.1", "192.168.255.255", "3232235521",
    "198.18.0.1", "198.19.255.255", "198.51.100.1", "203.0.113.1",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "250.1.2.3",
]
IPV6 = [
    "[::1]", "[0:0:0:0:0:0:0:1]", "[::]", "[::0]", "[0000::0001]",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
    "[::127.0.0.1]", "[::7f00:1]", "[::10.0.0.1]",
    "[64:ff9b::127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::1]",
    "[2002:7f00:1::]", "[2002:a00:1::1]", "[2002:c0a8:101::1]", "[2002:a9fe:a9fe::]",
    "[fc00::1]", "[fd00::1]", "[fd12:3456:789a::1]", "[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]",
    "[fe80::1]", "[fe80::1%25eth0]", "[fe80::a00:27ff:fe4e:66a1]", "[febf::1]",
    "[fec0::1]", "[feff::1]", "[ff02::1]", "[ff05::1:3]",
    "[2001:db8::1]", "[100::1]", "[2001::1]", "[::ffff:0.0.0.0]",
]
NAMES = [
    "localhost", "LOCALHOST", "localhost.", "LocalHost", "ip6-localhost", "ip6-loopback",
    "localhost.localdomain", "xn--localhost", "loc%61lhost",
]
USERINFO_AND_CONFUSION = [
    "http://good.example@127.0.0.1:PORT/",
    "http://good.example:pass@127.0.0.1:PORT/",
    "http://127.0.0.1:PORT@good.example/",
    "http://127.0.0.1:PORT\\@good.example/",
    "http://good.example\\@127.0.0.1:PORT/",
    "http://127.0.0.1:PORT#@good.example/",
    "http://127.0.0.1:PORT?@good.example/",
    "http://[::1]:PORT#@good.example/",
    "http://127.0.0.1%2f@good.example/",
    "http://%31%32%37.0.0.1:PORT/",
    "http://127.0.0.1%09:PORT/",
    "http://127.0.0.1%00.good.example/",
    "http:\\\\127.0.0.1:PORT\\",
    "http:/127.0.0.1:PORT/",
    "http:127.0.0.1:PORT/",
    "//127.0.0.1:PORT/",
    "127.0.0.1:PORT",
    " http://127.0.0.1:PORT/",
    "http://127.0.0.1:PORT/ ",
    "http://127.0.0.1:PORT/\nHost: good.example",
    "http://good.example/\r\n@127.0.0.1:PORT",
    "http://[::1]@good.example/",
    "http://0x7f.1:PORT/",
    "http://127.0.0.1:PORT:80/",
    "http://good.example:80@127.0.0.1:PORT/",
]
SCHEMES = [
    "file:///etc/passwd", "file://localhost/etc/passwd", "gopher://127.0.0.1:PORT/_GET", "dict://127.0.0.1:PORT/info",
    "ftp://127.0.0.1:PORT/", "data:text/html,<script>alert(1)</script>", "javascript:alert(1)",
    "ldap://127.0.0.1:PORT/", "ws://127.0.0.1:PORT/", "jar:http://127.0.0.1:PORT/x.jar!/", "netdoc:///etc/passwd",
    "sftp://127.0.0.1:PORT/", "tftp://127.0.0.1:PORT/x", "redis://127.0.0.1:6379/", "HTTP+unix://%2Ftmp%2Fsock/",
]
PORTS_AND_LENGTH = [
    "http://good.example:0/", "http://good.example:65536/", "http://good.example:99999/", "http://good.example:-1/",
    "http://good.example:port/", "http://good.example/" + "a" * 2100,
]


def corpus(port: int) -> list[str]:
    """Every hostile URL, with the canary's port filled in."""
    urls: list[str] = []
    for host in LOOPBACK_SPELLINGS + UNSPECIFIED_AND_BROADCAST + RANGE_EDGES + NAMES:
        urls.append(f"http://{host}:{port}/")
    for host in IPV6:
        urls.append(f"http://{host}:{port}/")
    urls += [url.replace("PORT", str(port)) for url in USERINFO_AND_CONFUSION + SCHEMES]
    urls += PORTS_AND_LENGTH
    urls += [f"https://{host}/" for host in ("127.0.0.1", "[::1]", "169.254.169.254", "localhost")]
    return urls


# Names that resolve (through an injected resolver) to blocked addresses,
# including a rebinding resolver whose first answer is public and second private.
RESOLVED_NAMES = {
    "internal.attacker.example": ["10.0.0.5"],
    "metadata.attacker.example": ["169.254.169.254"],
    "loop.attacker.example": ["127.0.0.1"],
    "v6loop.attacker.example": ["::1"],
    "mixed.attacker.example": ["93.184.216.34", "192.168.1.1"],
    "mapped.attacker.example": ["::ffff:127.0.0.1"],
    "cgnat.attacker.example": ["100.64.1.1"],
}
