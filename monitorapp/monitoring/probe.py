"""The probe: one HTTP GET of a monitored URL, under the outbound-request policy.

For every hop (the URL and each redirect) the host is resolved once, every
address is checked against the policy, and the connection goes to a checked
address: the adapter keys urllib3's pool by that address while TLS still
sends SNI for, and verifies the certificate against, the original host name.
A second lookup never happens, so DNS rebinding cannot steer the connection.

Redirects are followed by hand so that each hop passes the same checks.
Proxies from the environment are ignored (`trust_env = False`), the body read
is capped, and one deadline bounds the whole check: a watchdog shuts the
socket down when it passes, so a server that trickles its headers or body a
byte at a time cannot hold a thread for longer than the deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import http
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

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
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != (443 if target.scheme == "https" else 80):
        host_header += f":{target.port}"
    headers = {"User-Agent": settings.user_agent, "Host": host_header, "Accept": "*/*"}
    with requests.Session() as session:
        session.trust_env = False  # never a proxy, .netrc or CA bundle from the environment
        session.mount(f"{target.scheme}://", PinnedAdapter(address, target.host, settings.ssl_context))
        try:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise ProbeError("timeout", _timeout_message(settings))
            response = session.get(
                target.url, headers=headers, stream=True, allow_redirects=False, timeout=(remaining, remaining)
            )
            with response:
                location = session.get_redirect_target(response) if response.is_redirect else None
                if location is None and is_up(response.status_code):
                    _read_body(response, settings.max_body_bytes)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # The body is read from urllib3 directly, so its errors arrive unwrapped.
            raise _classify(exc, deadline, settings) from None
    if deadline.expired:
        # The watchdog cut the socket: what arrived before it is not a complete answer.
        raise ProbeError("timeout", _timeout_message(settings))
    return response.status_code, location


def _read_body(response: requests.Response, limit: int) -> None:
    """Read and discard the body, refusing more than `limit` bytes on the wire."""
    too_large = ProbeError("body_too_large", f"The response body is larger than {_size(limit)}.", response.status_code)
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    total = 0
    while chunk := response.raw.read(READ_CHUNK, decode_content=False):
        total += len(chunk)
        if total > limit:
            raise too_large


def _classify(exc: Exception, deadline: Deadline, settings: ProbeSettings) -> ProbeError:
    """Turn a requests or urllib3 exception into a kind and a message with no internals."""
    if deadline.expired or isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return ProbeError("timeout", _timeout_message(settings))
    if isinstance(exc, requests.exceptions.SSLError):
        return ProbeError("tls", "The TLS certificate or handshake failed.")
    if isinstance(exc, requests.ConnectionError | urllib3.exceptions.ProtocolError | OSError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError):
            return ProbeError("connect", "The connection was refused or could not be made.", unreachable=True)
        return ProbeError("connect", "The connection was closed before a complete response.")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidHeader):
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


class PinnedAdapter(HTTPAdapter):
    """Connect to one checked address while speaking to (and verifying) the host name."""

    def __init__(self, address: str, hostname: str, ssl_context: ssl.SSLContext) -> None:
        self.address = address
        self.hostname = hostname
        self.ssl_context = ssl_context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

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


class Watchdog:
    """One thread that expires every deadline of the process, earliest first.

    A `threading.Timer` per check cost a thread start (about 0.2 ms, a quarter
    of a check against a fast target) — the check-throughput benchmark.
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


_current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("probe_deadline", default=None)


_WATCHDOG = Watchdog()


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[Deadline]:
    deadline = Deadline(seconds)
    token = _current_deadline.set(deadline)
    _WATCHDOG.add(deadline)
    try:
        yield deadline
    finally:
        deadline.done = True
        _current_deadline.reset(token)


class _WatchedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = _current_deadline.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _HTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection
