"""Hostile targets against a real `flask worker`: every check ends at its deadline, the worker lives on.

The targets are raw TCP servers on 127.0.0.1 that misbehave on purpose, for
far longer than any deadline: one streams an endless body, one an endless
body a byte at a time, one trickles its headers a byte at a time, one
accepts and never answers. Loopback is opened to the worker only through
the allow-list, for exactly 127.0.0.1/32. Each server notes when the probe
connected and when it went away, so the deadline is measured from outside the
worker as well as from the check's own latency.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from ipaddress import ip_network
from types import SimpleNamespace

import pytest
from rq.job import Job
from sqlalchemy import func, select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Tenant
from monitorapp.monitoring.scheduler import enqueue_after_commit, stamp_first_claim
from monitorapp.queues import CHECKS_QUEUE, get_queue, get_redis
from monitorapp.tenancy import system_scope
from tests.conftest import fresh
from tests.faults.processes import wait_until
from tests.figures import add
from tests.monitoring.conftest import Server, make_endpoint, reload, standard_routes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TIMEOUT = 2.0  # CHECK_TIMEOUT_SECONDS of the worker
MARGIN = 2.0  # scheduling slack on 2 busy shared cores; a broken deadline would hold for a minute
MAX_BODY = 64 * 1024
HOSTILE_FOR = 90.0  # how long each target keeps misbehaving if nobody hangs up
SETTINGS = {
    "CHECK_TIMEOUT_SECONDS": TIMEOUT,
    "CHECK_RETRY_INTERVALS": (),  # one try: the check is recorded at its first deadline
    "CHECK_MAX_BODY_BYTES": MAX_BODY,
    "CHECK_THREADS": 8,
}


class HostileServer:
    """A TCP server on 127.0.0.1 that reads the request, then misbehaves with `behaviour(conn, stop)`.

    `held` lists, per connection, the seconds from accept until the client hung up.
    """

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.held: list[float] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn, time.monotonic()), daemon=True).start()

    def _serve(self, conn: socket.socket, accepted: float) -> None:
        with conn:
            conn.settimeout(0.2)
            with contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request and not self.stop_event.is_set():
                    with contextlib.suppress(TimeoutError):
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                self.behaviour(conn, self._stop_at(accepted))
            if not self.stop_event.is_set():
                self.held.append(time.monotonic() - accepted)

    def _stop_at(self, accepted: float):
        return lambda: self.stop_event.is_set() or time.monotonic() - accepted > HOSTILE_FOR

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)
        self.sock.close()


def endless_body(conn: socket.socket, stop) -> None:
    """Headers with no length, then a body that never ends, as fast as the socket takes it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    chunk = b"x" * 16384
    while not stop():
        with contextlib.suppress(TimeoutError):
            conn.sendall(chunk)


def endless_body_trickle(conn: socket.socket, stop) -> None:
    """Quick headers, then an endless body one byte every 50 ms."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    while not stop():
        conn.sendall(b"a")
        time.sleep(0.05)


def trickle_headers(conn: socket.socket, stop) -> None:
    """A status line, then a header one byte every 50 ms, never finished."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop():
        conn.sendall(b"a")
        time.sleep(0.05)


def silent(conn: socket.socket, stop) -> None:
    """Accept, read the request, never answer; notice when the client hangs up."""
    while not stop():
        try:
            if conn.recv(4096) == b"":
                return
        except TimeoutError:
            continue


HOSTILE = {
    "endless body": (endless_body, {"body_too_large"}),
    "endless body, a byte at a time": (endless_body_trickle, {"timeout"}),
    "headers a byte at a time": (trickle_headers, {"timeout"}),
    "accepts, never answers": (silent, {"timeout"}),
}


@pytest.fixture
def app(make_app, redis_url):
    app = make_app(ALLOWED_PRIVATE_NETWORKS=(ip_network("127.0.0.1/32"),), **SETTINGS)
    yield from fresh(app, redis_url)


@pytest.fixture
def hostile():
    servers = {name: HostileServer(behaviour) for name, (behaviour, _) in HOSTILE.items()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def healthy():
    server = Server(standard_routes())
    yield server
    server.stop()


def enqueue_first_checks(endpoints) -> None:
    """Claim and enqueue each endpoint's first check, as creating it does."""
    with system_scope():
        claims = [stamp_first_claim(reload(endpoint)) for endpoint in endpoints]
        db.session.commit()
    for claim in claims:
        assert enqueue_after_commit(claim)


def make_team(name: str) -> SimpleNamespace:
    team = Tenant(name=name)
    db.session.add(team)
    db.session.commit()
    return SimpleNamespace(id=team.id)


def result_count() -> int:
    count = db.session.scalar(select(func.count(CheckResult.id)).execution_options(system_scope=True))
    db.session.rollback()
    return count


def results(endpoint_ids) -> dict:
    db.session.expire_all()
    rows = db.session.scalars(
        select(CheckResult).where(CheckResult.endpoint_id.in_(list(endpoint_ids))).execution_options(system_scope=True)
    ).all()
    db.session.rollback()
    found: dict = {}
    for row in rows:
        found.setdefault(row.endpoint_id, []).append(row)
    return found


def test_hostile_targets_fail_at_their_deadline_and_the_worker_lives_on(
    app, app_processes, process_env, hostile, healthy
):
    with app.app_context():
        team = make_team("Hostile")
        # A day's interval: no endpoint here falls due again while the test runs.
        endpoints = {name: make_endpoint(team, server.url("/"), interval_minutes=1440) for name, server in hostile.items()}
        bystander = make_endpoint(team, healthy.url("/ok"), interval_minutes=1440)
        count_before = result_count()

    worker = app_processes.worker(process_env(ALLOWED_PRIVATE_NETWORKS="127.0.0.1/32", **SETTINGS))
    with app.app_context():
        started = time.monotonic()
        enqueue_first_checks([*endpoints.values(), bystander])
        ids = {endpoint.id for endpoint in [*endpoints.values(), bystander]}
        found = wait_until(
            lambda: (lambda got: got if set(got) == ids else None)(results(ids)),
            60,
            0.2,
            "a result for every hostile target",
        )
        elapsed = time.monotonic() - started

        for name, endpoint in endpoints.items():
            [row] = found[endpoint.id]
            assert not row.ok, name
            assert row.error_kind in HOSTILE[name][1], (name, row.error_kind, row.message)
            assert row.attempt == 1
            assert row.latency_ms <= (TIMEOUT + MARGIN) * 1000, (name, row.latency_ms)
            assert reload(endpoint).status == "down", name
        # The bystander in the same batch was not held back by its hanging neighbours.
        [bystander_row] = found[bystander.id]
        assert bystander_row.ok and bystander_row.latency_ms < TIMEOUT * 1000
        # Measured from the targets' side: each connection was cut by the deadline.
        for name, server in hostile.items():
            wait_until(lambda server=server: server.held, 10, 0.1, f"{name}: the probe to hang up")
            assert max(server.held) <= TIMEOUT + MARGIN, (name, server.held)
        assert elapsed < 4 * (TIMEOUT + MARGIN)  # all at once, none after another

        # The worker is healthy: alive, and its next checks succeed.
        assert worker.alive
        assert "Traceback" not in worker.output()
        later = [make_endpoint(team, healthy.url(f"/ok?n={n}"), interval_minutes=1440) for n in range(3)]
        enqueue_first_checks(later)
        later_ids = {endpoint.id for endpoint in later}
        after = wait_until(
            lambda: (lambda got: got if set(got) == later_ids else None)(results(later_ids)),
            30,
            0.2,
            "the checks after the hostile ones",
        )
        assert all(rows[0].ok for rows in after.values())
        assert worker.alive
        assert get_queue(CHECKS_QUEUE).count == 0
        # The failed registry holds the timeouts' dead letters (network failures after their
        # last try), one per endpoint, and no batch job that crashed.
        dead = get_queue(CHECKS_QUEUE).failed_job_registry
        letters = [Job.fetch(job_id, connection=get_redis()) for job_id in dead.get_job_ids()]
        assert sorted(job.func_name for job in letters) == ["monitorapp.monitoring.jobs.ping_endpoint"] * len(letters)
        timeouts = {endpoint.id for name, endpoint in endpoints.items() if HOSTILE[name][1] == {"timeout"}}
        assert sorted(job.args[0] for job in letters) == sorted(str(endpoint_id) for endpoint_id in timeouts)
        recorded = result_count() - count_before

    expected = len(endpoints) + 1 + len(later)
    add("hostile targets checked", len(endpoints))
    add("rows lost in fault tests", expected - recorded)
    add("faults survived", 1)
