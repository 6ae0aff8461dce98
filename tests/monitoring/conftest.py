"""Fixtures for the check engine: real local HTTP(S) servers and real workers.

Loopback is reachable in these tests only because the settings open it with
the allow-list (`ALLOWED_PRIVATE_NETWORKS`), exactly as a self-hoster opens
their LAN; nothing else is ever opened.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from types import SimpleNamespace

import pytest

from monitorapp.monitoring.probe import ProbeSettings

LOOPBACK = (ip_network("127.0.0.0/8"),)


class Handler(BaseHTTPRequestHandler):
    """Answers from the server's route table: path -> function(handler)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self.server.requests.append((self.path, dict(self.headers)))
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.reply(404)
            return
        with contextlib.suppress(OSError):  # the client hung up (as probes do at their deadline)
            route(self)

    def reply(self, status: int, body: bytes = b"ok", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


class Backlogged(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections when many checks arrive at once


class Server:
    """A real HTTP (or HTTPS) server on 127.0.0.1 in a thread."""

    def __init__(self, routes: dict[str, Callable], ssl_context: ssl.SSLContext | None = None) -> None:
        self.httpd = Backlogged(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = routes
        self.httpd.requests = []
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if ssl_context else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(handler: Handler) -> None:
    handler.reply(200, b"hello")


def standard_routes() -> dict[str, Callable]:
    return {
        "/ok": ok,
        "/moved": lambda h: h.reply(301, b"", {"Location": "/ok"}),
        "/loop": lambda h: h.reply(302, b"", {"Location": "/loop"}),
        "/error": lambda h: h.reply(500, b"broken"),
        "/slow": lambda h: (time.sleep(3), h.reply(200)),
        "/huge": lambda h: h.reply(200, b"x" * (2 * 1024 * 1024)),
        "/huge-unannounced": huge_without_length,
        "/trickle-headers": trickle_headers,
        "/trickle-body": trickle_body,
        "/to-metadata": lambda h: h.reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}),
        "/to-ftp": lambda h: h.reply(302, b"", {"Location": "ftp://example.com/file"}),
    }


def huge_without_length(handler: Handler) -> None:
    """2 MiB with no Content-Length: only a counted read can stop it."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    for _ in range(32):
        handler.wfile.write(b"x" * 65536)
    handler.close_connection = True


def trickle_headers(handler: Handler) -> None:
    """A status line, then one header byte every 50 ms, forever."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    handler.wfile.flush()
    for _ in range(2000):
        handler.wfile.write(b"a")
        handler.wfile.flush()
        time.sleep(0.05)


def trickle_body(handler: Handler) -> None:
    """Quick headers, then one body byte every 50 ms, forever."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(2000):
        handler.wfile.write(b"a")
        handler.wfile.flush()
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server(standard_routes())
    yield server
    server.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    servers = []

    def factory(routes: dict[str, Callable] | None = None, ssl_context: ssl.SSLContext | None = None) -> Server:
        started = Server(routes or standard_routes(), ssl_context)
        servers.append(started)
        return started

    yield factory
    for started in servers:
        started.stop()


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe_settings(**overrides) -> ProbeSettings:
    values = {"timeout": 1.0, "allowed_networks": LOOPBACK, "user_agent": "monitorapp-test/1"}
    values.update(overrides)
    return ProbeSettings(**values)


class Listener:
    """A TCP listener that only counts the connections it accepts (a would-be proxy)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener()
    yield started
    started.stop()


# -- the app, endpoints and a real worker ---------------------------------------


@pytest.fixture
def app(make_app, redis_url):
    """The app with short timeouts, instant retries and loopback allow-listed."""
    from tests.conftest import fresh

    app = make_app(
        ALLOWED_PRIVATE_NETWORKS=LOOPBACK,
        CHECK_TIMEOUT_SECONDS=1.0,
        CHECK_RETRY_INTERVALS=(0, 0),
        CHECK_THREADS=8,
        METRICS_TOKEN="metrics-token",
    )
    yield from fresh(app, redis_url)


def make_endpoint(team, url: str, **fields):
    """An endpoint of `team`, saved directly (the check engine does not care how it was made)."""
    from monitorapp.extensions import db
    from monitorapp.models import Endpoint
    from monitorapp.tenancy import system_scope

    # One failed check turns it down; confirmation counts are tested in tests/alerts.
    values = {"name": url, "interval_minutes": 5, "failure_threshold": 1}
    values.update(fields)
    with system_scope():
        endpoint = Endpoint(tenant_id=team.id, url=url, **values)
        db.session.add(endpoint)
        db.session.commit()
    # Plain values: they stay readable after commits and after a worker ends the session.
    return SimpleNamespace(id=endpoint.id, url=endpoint.url, tenant_id=endpoint.tenant_id)


def run_worker() -> None:
    """A real worker in burst mode: until no job is left, retries included."""
    from monitorapp.monitoring.worker import WORKER_QUEUES, AppWorker
    from monitorapp.queues import get_queue, get_redis

    worker = AppWorker([get_queue(name) for name in WORKER_QUEUES], connection=get_redis())
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def results_of(endpoint_id):
    from sqlalchemy import select

    from monitorapp.extensions import db
    from monitorapp.models import CheckResult

    return list(
        db.session.execute(
            select(CheckResult)
            .where(CheckResult.endpoint_id == endpoint_id)
            .order_by(CheckResult.id)
            .execution_options(system_scope=True)
        ).scalars()
    )


def reload(endpoint):
    from sqlalchemy import select

    from monitorapp.extensions import db
    from monitorapp.models import Endpoint

    db.session.expire_all()
    return db.session.execute(
        select(Endpoint).where(Endpoint.id == endpoint.id).execution_options(system_scope=True)
    ).scalar_one()
