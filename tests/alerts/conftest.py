"""Fixtures for the alerting tests: real receivers (HTTP and SMTP), checks recorded
through the check engine's own recording code, and a real worker in burst mode."""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from monitorapp.extensions import db
from monitorapp.models import Endpoint, utcnow
from monitorapp.tenancy import system_scope
from tests.conftest import free_port, fresh

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def app(make_app, redis_url, smtp_port):
    """The app with loopback allowed (only here), instant notification retries and SMTP to the test server."""
    app = make_app(
        ALLOWED_PRIVATE_NETWORKS=LOOPBACK,
        NOTIFY_RETRY_INTERVALS=(0, 0),
        NOTIFY_TIMEOUT_SECONDS=3.0,
        CHECK_RETRY_INTERVALS=(0,),
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_port,
        MAIL_USE_TLS=False,
        MAIL_FROM="monitorapp <alerts@monitorapp.test>",
        BASE_URL="https://monitor.example.test",
    )
    yield from fresh(app, redis_url)


# -- receivers ------------------------------------------------------------------------


class Receiver:
    """A local HTTP server that records every POST; `statuses` scripts its answers (then 200)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.paths.append(self.path)
                if status == 200:
                    receiver.bodies.append(json.loads(raw or b"{}"))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


class Mailbox:
    """aiosmtpd's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's naming)
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def mailbox(smtp_port) -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield box
    controller.stop()


# -- endpoints and checks ------------------------------------------------------------------


def make_endpoint(team_id: uuid.UUID, name: str = "shop", **fields) -> SimpleNamespace:
    values = {"url": f"https://{name}.example.com/health", "interval_minutes": 1}
    values.update(fields)
    with system_scope():
        endpoint = Endpoint(tenant_id=team_id, name=name, **values)
        db.session.add(endpoint)
        db.session.commit()
        return SimpleNamespace(id=endpoint.id, tenant_id=team_id, url=endpoint.url, name=name)


def record(endpoint: SimpleNamespace, results: str, start=None, step: timedelta = timedelta(minutes=1)) -> None:
    """Record checks through the check engine: `results` is a string like "++--+" (+ ok, - failed)."""
    from monitorapp.monitoring.jobs import Outcome, Target, record_results
    from monitorapp.monitoring.probe import ProbeResult

    moment = start or utcnow() - step * len(results)
    target = Target(endpoint.id, endpoint.tenant_id, endpoint.url, None)
    for symbol in results:
        if symbol == "+":
            result = ProbeResult(ok=True, status_code=200, latency_ms=120)
        else:
            result = ProbeResult(ok=False, status_code=503, latency_ms=80, error_kind="http_status",
                                 message="HTTP 503 Service Unavailable.")
        record_results([Outcome(target, result, 1, moment)])
        moment += step


def run_worker() -> None:
    """A real worker in burst mode over every queue, until no job is left (retries included).

    It runs in its own app context, as a worker process would: its sessions are
    not the test's (nor the signed-in test client's).
    """
    from flask import current_app

    from monitorapp.monitoring.worker import WORKER_QUEUES, AppWorker
    from monitorapp.queues import get_queue, get_redis

    with current_app.app_context():
        worker = AppWorker([get_queue(name) for name in WORKER_QUEUES], connection=get_redis())
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def add_channel(team_id: uuid.UUID, **data) -> uuid.UUID:
    from monitorapp.notify import create_channel
    from monitorapp.tenancy import tenant_scope

    with tenant_scope(team_id):
        channel = create_channel(**data)
        db.session.commit()
        return channel.id
