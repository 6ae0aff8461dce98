"""PostgreSQL restarted under the running app: web, worker and scheduler reconnect by themselves.

The three processes of the Procfile (gunicorn, `flask worker`, `flask
scheduler`) run against a PostgreSQL cluster of the test's own (initdb on a
free port; the shared server is never touched) and a redis-server of its
own. The cluster is stopped (`pg_ctl -m fast`: every session cut) and started
again; nothing else is restarted. The test proves that

- `/health/ready/` answers 503 naming the database while it is down, and 200
  again by itself once it is back;
- the web serves a signed-in person and an API client again after the
  restart, on the same process;
- the worker and the scheduler stay up, and checks resume: the scheduler's
  tick claims due endpoints again and the worker records their results;
- nothing committed before the restart is lost.

It needs the PostgreSQL server binaries (initdb, pg_ctl); without them it is
skipped, or fails when MONITORAPP_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import subprocess
import time
from types import SimpleNamespace

import pytest

from monitorapp.config import database_url as normalise
from monitorapp.config import engine_options
from monitorapp.extensions import db
from monitorapp.models import Role, utcnow
from monitorapp.tenancy import system_scope
from tests.conftest import Actor, make_team, make_token, make_user
from tests.faults.processes import app_env, wait_until
from tests.faults.stores import (
    HeartbeatWatch,
    PostgresCluster,
    WebUser,
    api_add_endpoint,
    endpoint_id_named,
    postgres_binaries,
    record_rows_lost,
    results_since,
    rows_lost,
    saved_rows,
)
from tests.figures import add
from tests.monitoring.conftest import make_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

TICK = 3  # SCHEDULER_INTERVAL_SECONDS of the scheduler
STEADY = 12  # endpoints checked every minute before the restart
SETTINGS = {
    "SCHEDULER_INTERVAL_SECONDS": TICK,
    "CHECK_TIMEOUT_SECONDS": 2,
    "CHECK_RETRY_INTERVALS": (0,),
    "CHECK_THREADS": 8,
    # The targets are a local server; loopback is opened for exactly 127.0.0.1.
    "ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
}


def cannot_run(reason: str) -> None:
    """Skip, or fail in a run that requires PostgreSQL (CI's PostgreSQL run)."""
    if os.environ.get("MONITORAPP_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason + "; this run requires PostgreSQL (MONITORAPP_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


@pytest.fixture
def own_postgres():
    bin_dir = postgres_binaries()
    if bin_dir is None:
        cannot_run("needs the PostgreSQL server binaries (initdb, pg_ctl) to run a cluster of its own"
                   " (apt-get install postgresql)")
    try:
        cluster = PostgresCluster(bin_dir)
    except RuntimeError as exc:
        cannot_run(f"cannot run a PostgreSQL cluster of its own: {exc}")
    try:
        cluster.init()
        cluster.start()
        cluster.psql("CREATE DATABASE monitorapp")
        yield cluster
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"{exc.cmd[:4]} failed: {exc.stderr}")
    finally:
        cluster.destroy()


@pytest.fixture
def cluster_app(own_postgres, own_redis, make_app):
    """The test's own app over the cluster: it builds the schema and reads what the processes wrote."""
    url = normalise(own_postgres.url("monitorapp"), "")
    app = make_app(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS=engine_options(url), REDIS_URL=own_redis.url)
    with app.app_context():
        with system_scope():
            db.create_all()
        yield app
        db.session.remove()


def test_web_worker_and_scheduler_reconnect_after_a_postgres_restart(
    own_postgres, own_redis, target, cluster_app, test_instance_path, app_processes
):
    team = make_team("Team A")
    db.session.commit()
    team = SimpleNamespace(id=team.id)
    user = make_user("alice@example.com", team)
    alice = Actor(user.id, "alice@example.com", team.id, Role.OWNER)
    token = make_token(alice)
    steady = [
        make_endpoint(team, target.url(f"/ok?steady={number}"), name=f"steady-{number:02d}", interval_minutes=1).id
        for number in range(STEADY)
    ]
    env = app_env(own_postgres.url("monitorapp"), own_redis.url, test_instance_path, **SETTINGS)
    web = app_processes.web(env)
    worker = app_processes.worker(env)
    scheduler = app_processes.scheduler(env)
    pids = (web.pid, worker.pid, scheduler.pid)
    ticks = HeartbeatWatch(own_redis).start()
    try:
        # Steady state: every endpoint checked once, a person signed in, the app ready.
        wait_until(lambda: len({found for found, _ in results_since(None)}) >= STEADY,
                   90, 0.5, "the first check of every endpoint")
        person = WebUser(web.url, alice.email)
        person.log_in()
        wait_until(lambda: person.get("/health/ready/").status_code == 200, 60, 0.5, "readiness before the restart")
        before = saved_rows()
        db.session.remove()  # the test's own connections are cut by the restart too

        # PostgreSQL stopped: every session cut.
        own_postgres.stop()
        assert person.get("/health/").status_code == 200
        ready = person.get("/health/ready/")
        assert ready.status_code == 503 and ready.json()["failing"] == ["database"], ready.text
        # A tick meets the outage in the worker (the tick claims in the database).
        worker.wait_for_output("OperationalError", timeout=30)
        assert worker.alive and scheduler.alive and web.alive

        # PostgreSQL back.
        own_postgres.start()
        back, back_at = time.time(), utcnow()
        wait_until(lambda: person.get("/health/ready/").status_code == 200, 60, 0.5, "readiness after the restart")
        dashboard = person.get("/dashboard")
        assert dashboard.status_code == 200 and "steady-00" in dashboard.text
        assert person.get(f"/endpoints/{steady[0]}").status_code == 200
        response = api_add_endpoint(web.url, token, "api-after", target.url("/ok?api=after"))
        assert response.status_code == 201, response.text
        created = person.add_endpoint("made-after", target.url("/ok?made=after"))
        assert created.status_code == 200 and "made-after" in created.text
        # Only the scheduler's tick can claim this one: it was written straight to the database.
        claimed_by_tick = make_endpoint(team, target.url("/ok?added=after"), name="added-after", interval_minutes=1).id
        fresh = [endpoint_id_named("api-after"), endpoint_id_named("made-after"), claimed_by_tick]
        wait_until(lambda: {found for found, _ in results_since(back_at, fresh)} == set(fresh),
                   60, 0.5, "the checks of the endpoints added after the restart")
        wait_until(lambda: len({found for found, _ in results_since(back_at, steady)}) >= 3,
                   90, 0.5, "regular checks of the earlier endpoints")
        assert ticks.after(back), "no tick after the restart"

        assert (web.pid, worker.pid, scheduler.pid) == pids
        assert web.alive and worker.alive and scheduler.alive, "a process died during the restart"
        after = saved_rows()
        lost = rows_lost(before, after)
        record_rows_lost(lost)
        assert lost == 0
        assert len(after["endpoints"]) == len(before["endpoints"]) + 3
        assert len(after["results"]) > len(before["results"])
    finally:
        ticks.stop()
    add("faults survived", 1)
