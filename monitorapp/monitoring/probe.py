"""The probe: one HTTP GET of a monitored URL, under the outbound-request policy.

For every hop (the URL and each redirect) the host is resolved once, every
address is checked against the policy, and the connection goes to a checked
address: the probe opens the socket to that address itself while TLS still
sends SNI for, and verifies the certificate against, the original host name.
A second lookup never happens, so DNS rebinding cannot steer the connection.

Each hop is one GET over a new connection, spoken by `http.client` on that
socket and closed after it: a monitor measures a real connect every time and
never reuses a connection across checks. No proxy is ever involved (nothing
reads the environment's proxy settings), the body read is capped, and one
deadline bounds the whole check: a watchdog shuts the socket (the TLS one
included) down when it passes, so a server that trickles its headers or body
a byte at a time cannot hold a thread for longer than the deadline.

`requests` and urllib3 are not used for checks: a session, adapter and pool
per check cost more CPU than the rest of the check (the check-throughput
benchmark, bench/README.md).
"""

from __future__ import annotations

import contextlib
import heapq
import http
import http.client
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
from requests.adapters import HTTPAdapter

from monitorapp.monitoring.policy import (
    BlockedAddress,
    IPNetwork,
    ResolutionFailed,
    Resolver,
    resolve_allowed,
    system_resolver,
)
from monitorapp.monitoring.urls import ParsedUrl, UrlError, parse_url

# Failures of the network path: RQ retries these before they count.
NETWORK_ERRORS = frozenset({"dns", "connect", "tls", "timeout"})
READ_CHUNK = 64 * 1024
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def is_up(status_code: int) -> bool:
    """The rule for "up": a 2xx or 3xx final response. Richer rules go here."""
    return 200 <= status_code < 400


@dataclass(frozen=True)
class ProbeSettings:
    """Everything a probe needs, read once from the app's configuration."""

    timeout: float = 10.0
    max_redirects: int = 5
    max_body_bytes: int = 1024 * 1024
    user_agent: str = "monitorapp"
    allowed_networks: tuple[IPNetwork, ...] = ()
    ca_bundle: str | None = None
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One context per settings object: loading the CA bundle for every
        # connection would cost more CPU than the rest of the check.
        context = ssl.create_default_context(cafile=certifi.where())
        if self.ca_bundle:
            context.load_verify_locations(cafile=self.ca_bundle)
        # The defaults, said out loud: the probe relies on them (see `_connect`).
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        object.__setattr__(self, "ssl_context", context)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], resolver: Resolver = system_resolver) -> ProbeSettings:
        return cls(
            timeout=float(config["CHECK_TIMEOUT_SECONDS"]),
            max_redirects=int(config["CHECK_MAX_REDIRECTS"]),
            max_body_bytes=int(config["CHECK_MAX_BODY_BYTES"]),
            user_agent=config["USER_AGENT"],
            allowed_networks=tuple(config.get("ALLOWED_PRIVATE_NETWORKS") or ()),
            ca_bundle=config.get("CHECK_CA_BUNDLE"),
            resolver=resolver,
        )


@dataclass(frozen=True)
class ProbeResult:
    """What one check found; `message` is safe to show the user."""

    ok: bool
    status_code: int | None
    latency_ms: int
    error_kind: str | None = None
    message: str | None = None

    @property
    def is_network_failure(self) -> bool:
        return self.error_kind in NETWORK_ERRORS


class ProbeError(Exception):
    """A check failed; `kind` names why and `message` says it for the user."""

    def __init__(self, kind: str, message: str, status_code: int | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.unreachable = unreachable  # no connection was made: another address may answer


def probe(url: str, settings: ProbeSettings) -> ProbeResult:
    """Fetch `url` once under the policy and say whether it is up."""
    started = time.monotonic()
    with _deadline(settings.timeout) as deadline:
        try:
            status_code = _fetch(url, settings, deadline)
            error = None if is_up(status_code) else ProbeError("http_status", _status_message(status_code), status_code)
        except ProbeError as exc:
            error = exc
    latency_ms = round((time.monotonic() - started) * 1000)
    if error is None:
        return ProbeResult(ok=True, status_code=status_code, latency_ms=latency_ms)
    return ProbeResult(
        ok=False, status_code=error.status_code, latency_ms=latency_ms, error_kind=error.kind, message=error.message
    )


# -- hops ---------------------------------------------------------------------


def _fetch(url: str, settings: ProbeSettings, deadline: Deadline) -> int:
    """Follow the URL through its redirects; return the final status code."""
    for hop in range(settings.max_redirects + 1):
        target = _parse(url, redirected=hop > 0)
        addresses = _resolve(target, settings, redirected=hop > 0)
        status_code, location = _get(target, addresses, settings, deadline)
        if location is None:
            return status_code
        url = urljoin(target.url, location)
    raise ProbeError("too_many_redirects", f"More than {settings.max_redirects} redirects.")


def _parse(url: str, redirected: bool) -> ParsedUrl:
    try:
        return parse_url(url)
    except UrlError as exc:
        if redirected:
            raise ProbeError("invalid_url", "Redirected to a URL that cannot be monitored.") from None
        raise ProbeError("invalid_url", exc.message) from None


def _resolve(target: ParsedUrl, settings: ProbeSettings, redirected: bool) -> list[str]:
    try:
        return resolve_allowed(target.host, target.port, settings.allowed_networks, settings.resolver)
    except BlockedAddress:
        where = "Redirected to" if redirected else "The host is"
        message = f"{where} a private or reserved address; monitors may only reach public ones."
        raise ProbeError("blocked", message) from None
    except ResolutionFailed:
        raise ProbeError("dns", "The host name could not be resolved.") from None


def _get(
    target: ParsedUrl, addresses: list[str], settings: ProbeSettings, deadline: Deadline
) -> tuple[int, str | None]:
    """GET one hop from the first checked address that accepts a connection."""
    for address in addresses[:-1]:
        try:
            return _get_from(address, target, settings, deadline)
        except ProbeError as exc:
            if not exc.unreachable or deadline.expired:
                raise
    return _get_from(addresses[-1], target, settings, deadline)


def _get_from(
    address: str, target: ParsedUrl, settings: ProbeSettings, deadline: Deadline
) -> tuple[int, str | None]:
    """GET one hop over a new connection to the checked `address`; return the status and any redirect."""
    sock = _connect(address, target, settings, deadline)
    response = None
    try:
        connection = _OneShotConnection(sock, target.host, target.port)
        connection.request("GET", _request_target(target.url), headers=_headers(target, settings))
        response = connection.getresponse()
        location = _redirect_target(response)
        if location is None and is_up(response.status):
            _read_body(response, settings.max_body_bytes)
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise _classify(exc, deadline, settings) from None
    finally:
        if response is not None:
            response.close()
        sock.close()
    if deadline.expired:
        # The watchdog cut the socket: what arrived before it is not a complete answer.
        raise ProbeError("timeout", _timeout_message(settings))
    return response.status, location


def _connect(address: str, target: ParsedUrl, settings: ProbeSettings, deadline: Deadline) -> socket.socket:
    """A new TCP connection to the checked address; for https, TLS verified against the host name.

    The address is an IP the policy checked, so nothing here looks a name up.
    The deadline watches the socket before it connects and, for https, the
    TLS socket before its handshake, so the watchdog can cut either.
    """
    remaining = deadline.remaining()
    if remaining <= 0:
        raise ProbeError("timeout", _timeout_message(settings))
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        raise ProbeError("connect", "The connection was refused or could not be made.", unreachable=True) from None
    try:
        deadline.watch(sock)
        sock.settimeout(remaining)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect((address, target.port))
        except OSError as exc:
            if deadline.expired or isinstance(exc, TimeoutError):
                raise ProbeError("timeout", _timeout_message(settings)) from None
            raise ProbeError("connect", "The connection was refused or could not be made.", unreachable=True) from None
        if target.scheme == "https":
            # The context requires a certificate and checks it against `server_hostname`
            # (`ProbeSettings`), which is also the name sent as SNI.
            sock = settings.ssl_context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
            deadline.watch(sock)
            try:
                sock.do_handshake()
            except OSError as exc:
                if deadline.expired or isinstance(exc, TimeoutError):
                    raise ProbeError("timeout", _timeout_message(settings)) from None
                if isinstance(exc, ssl.SSLError):
                    raise ProbeError("tls", "The TLS certificate or handshake failed.") from None
                raise ProbeError("connect", "The connection was closed before a complete response.") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _request_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _headers(target: ParsedUrl, settings: ProbeSettings) -> dict[str, str]:
    """The request headers; gzip and deflate are offered as browsers do, the body is never decoded."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != (443 if target.scheme == "https" else 80):
        host += f":{target.port}"
    return {"Host": host, "User-Agent": settings.user_agent, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


def _redirect_target(response: http.client.HTTPResponse) -> str | None:
    """The Location of a redirect, its raw bytes read as UTF-8 (as browsers and requests do)."""
    location = response.getheader("Location") if response.status in REDIRECT_CODES else None
    if location is None:
        return None
    try:
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise ProbeError("invalid_url", "Redirected to a URL that cannot be monitored.") from None


def _read_body(response: http.client.HTTPResponse, limit: int) -> None:
    """Read and discard the body, refusing more than `limit` bytes on the wire."""
    too_large = ProbeError("body_too_large", f"The response body is larger than {_size(limit)}.", response.status)
    length = response.getheader("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    total = 0
    while chunk := response.read(READ_CHUNK):  # no decoding: the count is of what crossed the wire
        total += len(chunk)
        if total > limit:
            raise too_large
    if response.length:  # http.client ends a body cut short quietly; the check must not
        raise http.client.IncompleteRead(b"", response.length)


def _classify(exc: Exception, deadline: Deadline, settings: ProbeSettings) -> ProbeError:
    """Turn an exception of the exchange into a kind and a message with no internals."""
    if deadline.expired or isinstance(exc, TimeoutError):
        return ProbeError("timeout", _timeout_message(settings))
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ProbeError("tls", "The TLS certificate or handshake failed.")
    if isinstance(exc, OSError | http.client.IncompleteRead):
        return ProbeError("connect", "The connection was closed before a complete response.")
    if isinstance(exc, http.client.InvalidURL):
        return ProbeError("invalid_url", "The URL cannot be requested.")
    return ProbeError("protocol", "The server sent a response that is not valid HTTP.")


def _status_message(status_code: int) -> str:
    try:
        return f"HTTP {status_code} {http.HTTPStatus(status_code).phrase}."
    except ValueError:
        return f"HTTP {status_code}."


def _timeout_message(settings: ProbeSettings) -> str:
    return f"No complete response within {settings.timeout:g} s."


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


# -- the connection: pinned address, original host name, deadline -------------


class _OneShotConnection(http.client.HTTPConnection):
    """`http.client` over a socket the probe connected: it never opens (or looks up) one itself."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        super().__init__(host, port)
        self.sock = sock

    def connect(self) -> None:
        raise http.client.NotConnected("a probe's connection is opened by the probe, once")


class PinnedAdapter(HTTPAdapter):
    """A `requests` adapter that connects to one checked address while verifying the host name.

    For webhooks (notify/transports.py); checks open their own sockets (`_connect`).
    """

    def __init__(self, address: str, hostname: str, ssl_context: ssl.SSLContext) -> None:
        self.address = address
        self.hostname = hostname
        self.ssl_context = ssl_context
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            # SNI and certificate verification use the name, never the address.
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["ssl_context"] = self.ssl_context
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        # The trust store is already in the SSL context; don't reload a bundle per connection.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class Deadline:
    """The end of one check; sockets opened before it are shut when it passes."""

    __slots__ = ("ends_at", "expired", "done", "_sockets", "_lock")

    def __init__(self, seconds: float) -> None:
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self.done = False  # the check finished first; the watchdog skips it
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        """The check is over: the watchdog must no longer touch its sockets."""
        with self._lock:
            self.done = True
            self._sockets.clear()


class Watchdog:
    """One thread that expires every deadline of the process, earliest first.

    A `threading.Timer` per check cost a thread start (about 0.2 ms, a quarter
    of a check against a fast target) — the check-throughput benchmark. The
    thread sleeps until the earliest deadline, so only a new earliest one
    wakes it: waking it for every check cost a thread switch per check. The
    finished checks behind the earliest leave the heap when it wakes (at most
    the checks of one timeout's length).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._changed:
            heapq.heappush(self._heap, (deadline.ends_at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="probe-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].expire()
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)  # finished checks leave the heap early
                self._changed.wait(self._heap[0][0] - now if self._heap else None)


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on this socket; close() would not.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = Watchdog()


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[Deadline]:
    deadline = Deadline(seconds)
    _WATCHDOG.add(deadline)
    try:
        yield deadline
    finally:
        deadline.finish()
