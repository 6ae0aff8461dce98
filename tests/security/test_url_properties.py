"""Properties of monitored URLs, over generated URLs (Hypothesis).

- Normalising is idempotent: the normal form of a normal form is itself, and
  it means the same URL (same scheme, host, port) as the text it came from.
- Validation and the probe read a URL the same way: what `validate_url`
  accepts, the probe's own parser and policy accept (first hop and redirect
  hop alike), and what it refuses, they refuse. End to end, a URL that
  validation accepts is really fetched — from the one server the allow-list
  opens — and one it refuses makes no connection.

Generated URLs mix schemes, user info, host names (ASCII, Unicode, IDNA,
full-width and circled digits, ideographic dots), IPv4 in every spelling,
IPv6 literals, ports, and paths and queries with percent-escapes and
non-ASCII. Runs are derandomized, so CI sees the same examples every time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitorapp.monitoring.probe import ProbeError, ProbeSettings, _parse, _resolve, probe
from monitorapp.monitoring.urls import UrlError, normalise_url, parse_url, validate_url
from tests.figures import add
from tests.security.canary import guarded

SERVER_HOST = "127.0.0.2"
SERVER_NETWORK = ipaddress.ip_network("127.0.0.2/32")
POLICY_KINDS = {"blocked", "invalid_url"}
PUBLIC = "93.184.216.34"
REDIRECT_PATH = re.compile(r"^/redirect-to/(\d+)$")
ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # RFC 3986: a scheme, so not a relative reference

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=400)
END_TO_END = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# -- the generated URLs -----------------------------------------------------------------
#
# Each part has a monitorable form and a hostile one. Half of the URLs are built from
# monitorable parts only, so the properties are tested on accepted URLs as much as on
# refused ones; the other half mix in anything.

WEB_SCHEMES = ["http", "https", "HTTP", "hTTpS"]
web_schemes = st.sampled_from(WEB_SCHEMES)
schemes = st.one_of(
    web_schemes, st.sampled_from(["ftp", "file", "gopher", "javascript", "ws", "http+unix", "ht tp", ""])
)
userinfo = st.one_of(st.just(""), st.sampled_from(["user@", "user:pass@", ":@", "a%40b@", "127.0.0.1@"]))

ascii_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
# Letters that UTS #46 maps (case, full-width, ligatures, circled digits, ß, dotted İ) or drops.
MAPPED = [*"abcxyzABCßüöéıİçøåñΩКк", "①", "②", "⑦", "⓪", "１", "２", "ａ", "Ａ", "ｘ", "ǅ", "ﬀ", "℡", "K", "Å",
          "ﬁ", "²", "½", "\u00ad", "ⅷ"]
unicode_label = st.lists(st.sampled_from(MAPPED), min_size=1, max_size=8).map("".join)
odd_label = st.one_of(
    st.lists(st.sampled_from([*MAPPED, "\u0301", "\u200d", "-", "_", "%", "\ufeff"]), min_size=1, max_size=8).map(
        "".join
    ),
    st.sampled_from(["xn--", "xn--zz", "0x7f", "0", "127", "1", "08", "0xg", ""]),
)
good_label = st.one_of(
    ascii_label, unicode_label, st.sampled_from(["xn--nxasmq6b", "xn--bcher-kva", "XN--BCHER-KVA", "localhost"])
)
dots = st.sampled_from([".", "。", "．", "｡"])


@st.composite
def host_names(draw, labels=good_label, trailing=st.sampled_from(["", ".", "。"])) -> str:
    parts = draw(st.lists(labels, min_size=1, max_size=4))
    text = parts[0]
    for part in parts[1:]:
        text += draw(dots) + part
    return text + draw(trailing)


def _spell_ipv4(parts: tuple[int, int, int, int], style: str) -> str:
    if style == "hex":
        return ".".join(hex(part) for part in parts)
    if style == "octal":
        return ".".join(f"0{part:o}" for part in parts)
    if style == "integer":
        return str(int.from_bytes(bytes(parts), "big"))
    if style == "short":
        return f"{parts[0]}.{int.from_bytes(bytes(parts[1:]), 'big')}"
    if style == "padded":
        return ".".join(f"{part:03d}" for part in parts)
    if style == "full-width":
        return ".".join(str(part) for part in parts).translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    return ".".join(str(part) for part in parts)


octets = st.tuples(*[st.integers(0, 255)] * 4)
dotted_ipv4 = st.builds(_spell_ipv4, octets, st.sampled_from(["dotted", "full-width"]))
odd_ipv4 = st.builds(_spell_ipv4, octets, st.sampled_from(["hex", "octal", "integer", "short", "padded"]))
plain_ipv6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
odd_ipv6 = st.builds(
    lambda address, style: {
        "upper": f"[{str(address).upper()}]",
        "exploded": f"[{address.exploded}]",
        "zone": f"[{address}%25eth0]",
        "bare": str(address),
    }[style],
    st.ip_addresses(v=6),
    st.sampled_from(["upper", "exploded", "zone", "bare"]),
)
good_hosts = st.one_of(host_names(), dotted_ipv4, plain_ipv6)
hosts = st.one_of(
    good_hosts,
    host_names(st.one_of(good_label, odd_label), st.sampled_from(["", ".", "..", "。", "．"])),
    odd_ipv4,
    odd_ipv6,
    st.sampled_from(["", "[", "[::1", "a b"]),
)
good_ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"), st.sampled_from([":", ":080"]))
ports = st.one_of(
    good_ports,
    st.integers(65536, 99999).map(lambda port: f":{port}"),
    st.sampled_from([":0", ":abc", ":-1", ":８０", ":1:2"]),
)
URL_PIECES = [*"aZ09/.-_~!$&'()*+,;=:@", "%", "%2F", "%2f", "%zz", "%41", "%25", "é", "ü", "日本", "☃", "?", "#",
              "[", "]", "\\", "^", "`", "{", "|", "}", '"', "<", ">", "%00", "%20", "%0d%0a"]
SPACES_AND_CONTROLS = [" ", "\t", "\u00a0", "\u2028", "\x7f", "\x85", "\r\n"]
clean_text = st.lists(st.sampled_from(URL_PIECES), max_size=12).map("".join)
any_text = st.one_of(clean_text, st.lists(st.sampled_from(URL_PIECES + SPACES_AND_CONTROLS), max_size=12).map("".join))


def _compose(scheme, info, host, port, path, query, fragment) -> str:
    return f"{scheme}://{info}{host}{port}{path}{query}{fragment}"


def _optional(prefix: str, text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), text.map(lambda value: prefix + value))


def urls(
    good_host_strategy=good_hosts, host_strategy=hosts, good_port_strategy=good_ports, port_strategy=ports
) -> st.SearchStrategy[str]:
    monitorable = st.builds(
        _compose,
        web_schemes,
        st.just(""),
        good_host_strategy,
        good_port_strategy,
        _optional("/", clean_text),
        _optional("?", clean_text),
        _optional("#", clean_text),
    )
    anything = st.builds(
        _compose,
        schemes,
        userinfo,
        host_strategy,
        port_strategy,
        _optional("/", any_text),
        _optional("?", any_text),
        _optional("#", any_text),
    )
    return st.one_of(monitorable, anything)


def _normal(raw: str) -> str | None:
    try:
        return normalise_url(raw)
    except UrlError:
        return None


# -- normalising ----------------------------------------------------------------------


@FAST
@given(urls())
# Found by this test: the host was mapped (UTS #46) after its numeric and root-dot checks.
@example("http://①②⑦.①/")  # was http://127.1/, a name that re-normalising refuses
@example("http://example.com。/")  # was http://example.com./, then http://example.com/
@example("http://a.b../")
@example("http://0.0.0．0/")  # was a host name, not the address 0.0.0.0
def test_normalising_is_idempotent(raw):
    normal = _normal(raw)
    if normal is None:
        return
    add("url properties: normal forms checked")
    assert normalise_url(normal) == normal, raw
    # …and the normal form is the same URL: the same place to connect to.
    assert parse_url(normal) == parse_url(raw), raw
    assert normal.isascii() and "#" not in normal, raw


@FAST
@given(urls())
def test_the_normal_form_splits_into_the_host_and_port_it_was_read_as(raw):
    # The probe takes its request target from the normal form with urlsplit, and the
    # Host header and connection from the parsed parts: they must describe one URL.
    normal = _normal(raw)
    if normal is None:
        return
    parsed = parse_url(normal)
    split = urlsplit(normal)
    assert (split.scheme, split.hostname, split.port or (443 if split.scheme == "https" else 80)) == (
        parsed.scheme,
        parsed.host,
        parsed.port,
    ), raw
    assert split.username is None and split.password is None and split.fragment == "", raw


# -- validation and the probe agree -------------------------------------------------------


def _probe_reads(raw: str, probe_settings: ProbeSettings, redirected: bool) -> str | None:
    """What the probe's own parser and policy make of `raw` (no connection), or None if refused."""
    try:
        target = _parse(raw, redirected=redirected)
        _resolve(target, probe_settings, redirected=redirected)
    except ProbeError as exc:
        assert exc.kind in POLICY_KINDS, exc.kind
        return None
    return target.url


def _validation_reads(raw: str, resolver, allowed=()) -> str | None:
    try:
        return validate_url(raw, allowed_networks=allowed, resolver=resolver)
    except UrlError:
        return None


def _public(host: str, port: int) -> list[str]:
    return [PUBLIC]


PUBLIC_SETTINGS = ProbeSettings(resolver=_public)  # built once: loading the CA bundle takes a while


@FAST
@given(urls())
def test_validation_and_the_probes_parser_accept_and_refuse_the_same_urls(raw):
    validated = _validation_reads(raw, _public)
    assert _probe_reads(raw, PUBLIC_SETTINGS, redirected=False) == validated, raw
    assert _probe_reads(raw, PUBLIC_SETTINGS, redirected=True) == validated, raw
    if validated is not None:
        add("url properties: accepted by both")
        # What is saved is what the probe reads again at check time.
        assert _probe_reads(validated, PUBLIC_SETTINGS, redirected=False) == validated, raw


# -- end to end: the real probe against the one allowed server -------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Host")))
        if match := REDIRECT_PATH.match(self.path):
            location = self.server.locations[int(match.group(1))]
            reply = b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nConnection: close\r\nLocation: "
            reply += location.encode("utf-8") + b"\r\n\r\n"
        else:
            reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        with contextlib.suppress(OSError):
            self.wfile.write(reply)
        self.close_connection = True

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer((SERVER_HOST, 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.locations = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _to_the_server(host: str, port: int) -> list[str]:
    """Every name is the allowed server's address."""
    return [SERVER_HOST]


SERVER_SETTINGS = ProbeSettings(timeout=3.0, allowed_networks=(SERVER_NETWORK,), resolver=_to_the_server)

# Hosts whose connection, were the probe to make one, stays on this machine: every name
# resolves to the server, and address literals are the server's or blocked ones.
good_local_hosts = st.one_of(host_names(), st.sampled_from([SERVER_HOST, "localhost", "ｌｏｃａｌｈｏｓｔ", "１２７.０.０.２"]))
local_hosts = st.one_of(
    good_local_hosts,
    host_names(st.one_of(good_label, odd_label), st.sampled_from(["", ".", "..", "。", "．"])),
    st.sampled_from(
        ["127.0.0.1", "127.0.0.3", "127.1", "0x7f.0.0.2", "2130706434", "0177.0.0.2", "127。0。0。2", "[::1]",
         "[::ffff:127.0.0.2]", "[::127.0.0.2]", "10.0.0.1", "169.254.169.254", "0.0.0.0", "[fe80::1%25lo]",
         "[64:ff9b::7f00:2]", "[fd00::1]"]
    ),
)
server_ports = st.sampled_from([":PORT", ":0PORT", ":00PORT"])


def _local_urls() -> st.SearchStrategy[str]:
    # The server speaks plain HTTP: an https URL would fail its handshake, which proves nothing here.
    return urls(good_local_hosts, local_hosts, server_ports, server_ports).map(
        lambda url: "http" + url[5:] if url[:5].lower() == "https" else url
    )


def _where(raw: str, port: int) -> str:
    return raw.replace("PORT", str(port))


def _fetchable(validated: str | None) -> bool:
    """Validation accepted it, and a connection would go to the allowed server (a name or 127.0.0.2)."""
    if validated is None:
        return False
    parsed = parse_url(validated)
    return not parsed.is_ip_literal or parsed.host == SERVER_HOST


@END_TO_END
@given(raw=_local_urls())
def test_what_validation_accepts_the_probe_fetches_and_what_it_refuses_makes_no_connection(server, raw):
    raw = _where(raw, server.server_address[1])
    validated = _validation_reads(raw, _to_the_server, (SERVER_NETWORK,))
    if validated is not None and not _fetchable(validated):
        return  # a public address literal: never connected to from a test
    before = len(server.requests)
    with guarded() as guard:
        result = probe(raw, SERVER_SETTINGS)
    attempts = {(attempt.host, attempt.port) for attempt in guard.from_this_thread()}
    if validated is None:
        assert result.error_kind in POLICY_KINDS, (raw, result)
        assert attempts == set() and len(server.requests) == before
    else:
        add("url properties: fetched end to end")
        assert result.ok, (raw, validated, result)
        assert attempts == {(SERVER_HOST, server.server_address[1])}
        parsed = parse_url(validated)
        path, host_header = server.requests[-1]
        assert host_header == validated.split("/")[2]
        assert path == validated[len(f"{parsed.scheme}://{host_header}") :]


@END_TO_END
@given(location=_local_urls())
def test_a_redirect_is_followed_exactly_when_validation_would_accept_its_target(server, location):
    location = _where(location, server.server_address[1])
    if any(char in location for char in "\r\n\x00") or location != location.strip():
        return  # cannot be sent as a header value
    if not ABSOLUTE.match(location):
        return  # a relative reference ("://x" is a path): resolved against the server, not validated
    validated = _validation_reads(location, _to_the_server, (SERVER_NETWORK,))
    if validated is not None and not _fetchable(validated):
        return
    server.locations.append(location)
    start = f"http://{SERVER_HOST}:{server.server_address[1]}/redirect-to/{len(server.locations) - 1}"
    before = len(server.requests)
    with guarded() as guard:
        result = probe(start, SERVER_SETTINGS)
    attempts = {(attempt.host, attempt.port) for attempt in guard.from_this_thread()}
    assert attempts <= {(SERVER_HOST, server.server_address[1])}
    if validated is None:
        assert result.error_kind in POLICY_KINDS, (location, result)
        assert len(server.requests) == before + 1  # the first hop only
    else:
        add("url properties: redirects followed end to end")
        assert result.ok, (location, validated, result)
        assert len(server.requests) == before + 2
