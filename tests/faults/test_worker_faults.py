"""A worker killed (kill -9) in the middle of its checks: the endpoints are checked again, none stays claimed.

Real processes: `flask scheduler` ticking every second and `flask worker`,
over the test's database and Redis; the kill is a kill -9 of the worker's
process group (its RQ scheduler child too), as a platform's restart does. The targets hold their first request
open, so the kill lands while the checks are on the wire. The lost checks
never report; the scheduler claims their endpoints again when the claim's
grace period has passed, and a new worker checks them. Nothing is faked: the
test waits out the real grace period (about a minute with these settings).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from ipaddress import ip_network
from types import SimpleNamespace

import pytest
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint, Tenant
from monitorapp.monitoring.scheduler import grace_seconds, next_slot, slot_offset
from monitorapp.queues import CHECKS_QUEUE, DEFAULT_QUEUE, get_queue
from tests.conftest import fresh
from tests.faults.processes import wait_until
from tests.figures import add, record
from tests.monitoring.conftest import Server, make_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

INTERVAL_MINUTES = 1
SETTINGS = {
    "SCHEDULER_INTERVAL_SECONDS": 1,
    "CHECK_TIMEOUT_SECONDS": 4,  # longer than it takes to see the request and kill the worker
    "CHECK_RETRY_INTERVALS": (),
    "CHECK_THREADS": 8,
}
HELD = 5  # endpoints whose first check is on the wire when the worker dies
QUICK = 5  # endpoints whose checks had finished before


class HoldingTarget:
    """A real HTTP server: the first request to each /hold/<n> is held open; everything else answers 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.arrivals: dict[str, list[float]] = {}
        routes = {f"/hold/{n}": self._hold for n in range(HELD)}
        routes.update({f"/quick/{n}": self._answer for n in range(QUICK)})
        self.server = Server(routes)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def _arrived(self, handler) -> int:
        with self.lock:
            seen = self.arrivals.setdefault(handler.path, [])
            seen.append(time.time())
            return len(seen)

    def _hold(self, handler) -> None:
        if self._arrived(handler) == 1:
            self.release.wait(120)  # the worker that asked is killed meanwhile
        handler.reply(200, b"fine now")

    def _answer(self, handler) -> None:
        self._arrived(handler)
        handler.reply(200, b"fine")

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.arrivals.get(path, []))

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture
def app(make_app, redis_url):
    app = make_app(ALLOWED_PRIVATE_NETWORKS=(ip_network("127.0.0.1/32"),), **SETTINGS)
    yield from fresh(app, redis_url)


@pytest.fixture
def target():
    started = HoldingTarget()
    yield started
    started.stop()


def make_team(name: str) -> SimpleNamespace:
    team = Tenant(name=name)
    db.session.add(team)
    db.session.commit()
    return SimpleNamespace(id=team.id)


def endpoint_rows(ids) -> dict:
    db.session.expire_all()
    rows = db.session.scalars(
        select(Endpoint).where(Endpoint.id.in_(list(ids))).execution_options(system_scope=True)
    ).all()
    found = {
        row.id: SimpleNamespace(
            last_enqueued_at=row.last_enqueued_at, next_check_at=row.next_check_at, last_checked_at=row.last_checked_at
        )
        for row in rows
    }
    db.session.rollback()
    return found


def checks_of(ids) -> dict:
    db.session.expire_all()
    rows = db.session.execute(
        select(CheckResult.endpoint_id, CheckResult.checked_at, CheckResult.ok)
        .where(CheckResult.endpoint_id.in_(list(ids)))
        .order_by(CheckResult.checked_at)
        .execution_options(system_scope=True)
    ).all()
    db.session.rollback()
    found: dict = {endpoint_id: [] for endpoint_id in ids}
    for row in rows:
        found[row.endpoint_id].append(row)
    return found


def slot_of(endpoint_id, when) -> int:
    """The index of the endpoint's grid period that `when` falls in."""
    period = INTERVAL_MINUTES * 60
    return int((when.timestamp() - slot_offset(endpoint_id, INTERVAL_MINUTES)) // period)


def test_a_worker_killed_mid_check_loses_no_endpoint(app, app_processes, process_env, target):
    env = process_env(ALLOWED_PRIVATE_NETWORKS="127.0.0.1/32", **SETTINGS)
    with app.app_context():
        grace = grace_seconds()
        team = make_team("Killed worker")
        held = [make_endpoint(team, target.url(f"/hold/{n}"), interval_minutes=INTERVAL_MINUTES) for n in range(HELD)]
        held_paths = {endpoint.id: f"/hold/{n}" for n, endpoint in enumerate(held)}
        quick = [make_endpoint(team, target.url(f"/quick/{n}"), interval_minutes=INTERVAL_MINUTES) for n in range(QUICK)]
        ids = [endpoint.id for endpoint in held + quick]

    doomed = app_processes.worker(env, name="worker-1")
    app_processes.scheduler(env)
    with app.app_context():
        # The quick checks are recorded; the held ones are on the wire.
        wait_until(lambda: all(checks_of([e.id for e in quick]).values()), 60, 0.2, "the quick checks")
        wait_until(lambda: all(target.count(f"/hold/{n}") for n in range(HELD)), 60, 0.1, "the held requests")
        claims = endpoint_rows([e.id for e in held])
        doomed.kill()
        killed_at = time.time()
        assert not any(checks_of([e.id for e in held]).values()), "a held check reported before the kill"
        for endpoint in held:  # still claimed by the lost check, until the grace period ends
            claim = claims[endpoint.id]
            assert claim.next_check_at == claim.last_enqueued_at + timedelta(seconds=grace)

        rescuer = app_processes.worker(env, name="worker-2")
        held_ids = [endpoint.id for endpoint in held]
        deadline = grace + 90  # the grace period, then a tick and a check on a busy machine
        rechecked = wait_until(
            lambda: (lambda got: got if all(got.values()) else None)(checks_of(held_ids)),
            deadline,
            0.5,
            "the killed checks to be done again",
        )
        for endpoint in held:
            check = rechecked[endpoint.id][0]
            first_claim = claims[endpoint.id].last_enqueued_at
            assert check.ok
            # Checked again within two intervals of the claim whose check was killed...
            assert check.checked_at - first_claim <= timedelta(minutes=2 * INTERVAL_MINUTES)
            # ...and not before its grace period ended: never two checks of it in flight.
            assert target.arrivals[held_paths[endpoint.id]][1] >= (
                first_claim + timedelta(seconds=grace) - timedelta(seconds=1)
            ).timestamp()
        record(
            "seconds from a killed check to its re-check",
            round(max(r[0].checked_at.timestamp() for r in rechecked.values()) - killed_at, 1),
        )

    # Stop scheduling; the new worker finishes what was enqueued and stops (SIGTERM: it records
    # its checks in flight first). Then nothing may be left claimed or queued.
    scheduler = next(process for process in app_processes.processes if process.name == "scheduler")
    scheduler.kill()
    with app.app_context():
        queues = [get_queue(name) for name in (DEFAULT_QUEUE, CHECKS_QUEUE)]

        def drained() -> bool:
            return all(
                queue.count == 0 and ScheduledJobRegistry(queue=queue).count == 0 for queue in queues
            )

        # Twice, 2 s apart: a tick that was running when first seen has enqueued its checks by then.
        wait_until(lambda: drained() and (time.sleep(2) or drained()), 60, 0.2, "the queues to drain")
        assert rescuer.terminate() == 0
        queue = get_queue(CHECKS_QUEUE)
        assert queue.count == 0 and StartedJobRegistry(queue=queue).count == 0
        final = endpoint_rows(ids)
        checks = checks_of(ids)
        stuck = []
        for endpoint_id in ids:
            row = final[endpoint_id]
            # Every claim has reported: the endpoint waits for its next slot, not for a grace period.
            if row.next_check_at != next_slot(endpoint_id, INTERVAL_MINUTES, row.last_checked_at):
                stuck.append(endpoint_id)
        assert stuck == [], "endpoints left claimed"
        duplicates = sum(
            count - 1
            for endpoint_id, rows in checks.items()
            for count in Counter(slot_of(endpoint_id, row.checked_at) for row in rows).values()
            if count > 1
        )
        assert duplicates == 0
        assert len(queue.failed_job_registry) == 0
        lost = sum(1 for rows in checks.values() if not rows)

    add("rows lost in fault tests", lost)
    add("duplicate checks in fault tests", duplicates)
    add("endpoints left claimed after fault tests", len(stuck))
    add("faults survived", 1)

