"""Redis restarted and emptied under the running app: web, worker and scheduler ride it out.

The three processes of the Procfile (gunicorn, `flask worker`, `flask
scheduler`) run against a redis-server of the test's own, which is flushed
and killed, left down while a person and an API client use the web, then
started again empty. Nothing is restarted but Redis. The test proves that

- the pages render and endpoints can be created while Redis is down (their
  first check waits for the scheduler), and readiness says Redis is down;
- the worker and the scheduler stay up through the outage and reconnect;
- the scheduler registers its tick again in the empty Redis, and the first or
  second tick after Redis returns claims the endpoints that were due; their
  checks then run, and so do the regular checks of the endpoints that were
  there before;
- nothing saved in the database is lost.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from monitorapp.models import utcnow
from monitorapp.monitoring.scheduler import TICK_JOB_ID
from tests.conftest import make_token
from tests.faults.processes import app_env, wait_until
from tests.faults.stores import (
    HeartbeatWatch,
    WebUser,
    api_add_endpoint,
    endpoint_id_named,
    last_claimed_at,
    record_rows_lost,
    results_since,
    rows_lost,
    saved_rows,
)
from tests.figures import add
from tests.monitoring.conftest import make_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TICK = 3  # SCHEDULER_INTERVAL_SECONDS of the scheduler
STEADY = 12  # endpoints checked every minute before the outage
SETTINGS = {
    "SCHEDULER_INTERVAL_SECONDS": TICK,
    "CHECK_TIMEOUT_SECONDS": 2,
    "CHECK_RETRY_INTERVALS": (0,),
    "CHECK_THREADS": 8,
    # The targets are a local server; loopback is opened for exactly 127.0.0.1.
    "ALLOWED_PRIVATE_NETWORKS": "127.0.0.1/32",
}
RQ_SCHEDULER_JOBS = "rq:scheduler:scheduled_jobs"  # rq-scheduler's sorted set of recurring jobs


def test_web_worker_and_scheduler_ride_out_a_redis_restart_that_empties_it(
    own_redis, target, database_url, test_instance_path, alice, app_processes
):
    team = SimpleNamespace(id=alice.team_id)
    steady = [
        make_endpoint(team, target.url(f"/ok?steady={number}"), name=f"steady-{number:02d}", interval_minutes=1).id
        for number in range(STEADY)
    ]
    token = make_token(alice)
    env = app_env(database_url, own_redis.url, test_instance_path, **SETTINGS)
    web = app_processes.web(env)
    worker = app_processes.worker(env)
    scheduler = app_processes.scheduler(env)
    pids = (web.pid, worker.pid, scheduler.pid)
    ticks = HeartbeatWatch(own_redis).start()
    try:
        # Steady state: every endpoint checked once, a person signed in.
        wait_until(lambda: len({found for found, _ in results_since(None)}) >= STEADY,
                   90, 0.5, "the first check of every endpoint")
        person = WebUser(web.url, alice.email)
        person.log_in()
        before = saved_rows()

        # Redis flushed and gone.
        own_redis.client().flushall()
        own_redis.stop()
        assert person.get("/health/").status_code == 200
        ready = person.get("/health/ready/")
        assert ready.status_code == 503 and "redis" in ready.json()["failing"]
        dashboard = person.get("/dashboard")
        assert dashboard.status_code == 200 and "steady-00" in dashboard.text
        page = person.get(f"/endpoints/{steady[0]}")
        assert page.status_code == 200 and "steady-00" in page.text
        assert person.get("/api/endpoints/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        created = person.add_endpoint("made-while-down", target.url("/ok?made=down"))
        assert created.status_code == 200 and created.url.endswith("/dashboard"), created.status_code
        assert "made-while-down" in created.text
        response = api_add_endpoint(web.url, token, "api-while-down", target.url("/ok?api=down"))
        assert response.status_code == 201, response.text
        # Written straight to the database: only the scheduler's tick can claim it.
        make_endpoint(team, target.url("/ok?written=down"), name="written-while-down", interval_minutes=1)
        # Both background processes have met the outage, and are still running.
        worker.wait_for_output("could not connect to Redis", timeout=30)
        scheduler.wait_for_output("Redis unreachable", timeout=30)
        assert worker.alive and scheduler.alive

        # Redis back, empty.
        own_redis.start()
        back, back_at = time.time(), utcnow()
        wait_until(lambda: own_redis.client().zscore(RQ_SCHEDULER_JOBS, TICK_JOB_ID) is not None,
                   60, 0.2, "the scheduler to register its tick again")
        waiting = [endpoint_id_named(name) for name in ("made-while-down", "api-while-down", "written-while-down")]

        def claimed_since_back() -> list | None:
            claims = [last_claimed_at(endpoint_id) for endpoint_id in waiting]
            return claims if all(claim is not None and claim > back_at for claim in claims) else None

        claims = wait_until(claimed_since_back, 60, 0.2, "the endpoints that were due to be claimed")
        after_back = wait_until(lambda: ticks.after(back)[:2] if len(ticks.after(back)) >= 2 else None,
                                60, 0.2, "two ticks after Redis returned")
        assert max(claim.timestamp() for claim in claims) < after_back[1], (
            f"claimed at {[claim.isoformat() for claim in claims]}, ticks after the return at {ticks.after(back)}"
        )
        wait_until(lambda: {found for found, _ in results_since(back_at, waiting)} == set(waiting),
                   60, 0.5, "the checks of the endpoints that waited for Redis")
        # The regular checks resume too: most go through RQ's scheduled registry (the
        # scheduler's look-ahead), which the worker's scheduler process serves.
        wait_until(lambda: len({found for found, _ in results_since(back_at, steady)}) >= 3,
                   90, 0.5, "regular checks of the earlier endpoints")

        # The web, with Redis back: ready again, pages render, new endpoints are checked at once.
        wait_until(lambda: person.get("/health/ready/").status_code == 200, 60, 0.5, "readiness")
        assert person.get("/dashboard").status_code == 200
        assert person.get(f"/endpoints/{waiting[0]}").status_code == 200
        created = person.add_endpoint("made-after", target.url("/ok?made=after"))
        assert created.status_code == 200 and "made-after" in created.text
        response = api_add_endpoint(web.url, token, "api-after", target.url("/ok?api=after"))
        assert response.status_code == 201, response.text
        fresh = [endpoint_id_named("made-after"), endpoint_id_named("api-after")]
        wait_until(lambda: {found for found, _ in results_since(back_at, fresh)} == set(fresh),
                   60, 0.5, "the first checks of endpoints added after the return")

        assert (web.pid, worker.pid, scheduler.pid) == pids
        assert web.alive and worker.alive and scheduler.alive, "a process died during the outage"
        after = saved_rows()
        lost = rows_lost(before, after)
        record_rows_lost(lost)
        assert lost == 0
        assert len(after["endpoints"]) == len(before["endpoints"]) + 5
        assert len(after["results"]) > len(before["results"])
    finally:
        ticks.stop()
    add("faults survived", 1)
