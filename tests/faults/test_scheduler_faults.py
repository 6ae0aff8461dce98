"""Scheduler faults: two schedulers over ten simulated minutes, and a tick killed (kill -9) midway.

- Two schedulers: the real tick (`schedule_endpoint_checks`) runs in two
  threads, each with its own database connection, 120 times each, over a
  simulated clock. Only the clock is simulated (the scheduler's and the
  enqueueing code's `utcnow`); PostgreSQL, Redis, the probes of a local HTTP
  server and the recording of results are real.
- Killed tick: the tick runs where production runs it, in a `flask worker` on
  the default queue that `flask scheduler` feeds. Both are killed in the
  middle of a large tick, at the worst moment (a batch committed, its checks
  not yet enqueued), and restarted.

Counting is from what was really enqueued in Redis (the `check_batch` jobs'
claims, on the queue and in RQ's scheduled registry) and from the recorded
checks, never from what the scheduler says it did. A check's *slot* is the
period of the endpoint's grid (`offset + k × interval`) in which it runs: two
checks of one endpoint in one slot are a duplicate; a slot with none between
the first check and the end is a missed check.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from types import SimpleNamespace

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.exc import OperationalError

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint, Tenant, utcnow
from monitorapp.monitoring import jobs, scheduler
from monitorapp.monitoring.jobs import Outcome, load_targets, record_outcomes
from monitorapp.monitoring.probe import ProbeSettings, probe
from monitorapp.monitoring.scheduler import grace_seconds, schedule_endpoint_checks, slot_offset
from monitorapp.queues import CHECKS_QUEUE, DEFAULT_QUEUE, get_queue, get_redis
from monitorapp.tenancy import system_scope
from tests.conftest import fresh
from tests.faults.processes import wait_until
from tests.figures import add, record
from tests.monitoring.conftest import Server, run_worker, standard_routes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOOPBACK = (ip_network("127.0.0.1/32"),)


# -- a simulated clock for in-process ticks -----------------------------------------


class SimulatedClock:
    """`utcnow()` for the scheduler and the enqueueing code: each thread reads its own time."""

    def __init__(self) -> None:
        self.local = threading.local()

    def set(self, when: datetime | None) -> None:
        self.local.now = when

    def __call__(self) -> datetime:
        return getattr(self.local, "now", None) or utcnow()


@pytest.fixture
def clock(monkeypatch) -> SimulatedClock:
    simulated = SimulatedClock()
    monkeypatch.setattr(scheduler, "utcnow", simulated)
    monkeypatch.setattr(jobs, "utcnow", simulated)
    return simulated


# -- what was enqueued -----------------------------------------------------------------


def enqueued_jobs() -> list[tuple[str, float | None, list[list[str]]]]:
    """Every `check_batch` job on the checks queue or in its scheduled registry: (id, runs at, claims).

    `runs at` is the scheduled time, or None for a job on the queue (due at once).
    """
    queue = get_queue(CHECKS_QUEUE)
    registry = ScheduledJobRegistry(queue=queue)
    scheduled = [(job_id.decode(), score) for job_id, score in get_redis().zrange(registry.key, 0, -1, withscores=True)]
    found = Job.fetch_many([job_id for job_id, _ in scheduled], connection=get_redis())
    listed = [(job_id, runs_at, job.args[0]) for (job_id, runs_at), job in zip(scheduled, found, strict=True)]
    return listed + [(job.id, None, job.args[0]) for job in queue.get_jobs()]


def take_enqueued() -> list[tuple[float, list[list[str]]]]:
    """The enqueued claims as (runs at, claims), removed as a worker takes them.

    A job on the queue runs when it was claimed (the claims of a job share their tick's time).
    """
    queue = get_queue(CHECKS_QUEUE)
    registry = ScheduledJobRegistry(queue=queue)
    taken = []
    for job_id, runs_at, claims in enqueued_jobs():
        taken.append((runs_at if runs_at is not None else datetime.fromisoformat(claims[0][1]).timestamp(), claims))
        if runs_at is not None:
            registry.remove(job_id, delete_job=True)
    queue.empty()
    return taken


def slot_of(endpoint_id: uuid.UUID, interval_minutes: int, when: float) -> int:
    period = interval_minutes * 60
    return int((when - slot_offset(endpoint_id, interval_minutes)) // period)


def make_team(name: str) -> SimpleNamespace:
    team = Tenant(name=name)
    db.session.add(team)
    db.session.commit()
    return SimpleNamespace(id=team.id)


# -- two schedulers over ten simulated minutes ----------------------------------------------

TICK = 5  # simulated seconds between ticks
SIMULATED_MINUTES = 10
ENDPOINTS = 150
TWO_SCHEDULERS = {
    "SCHEDULER_INTERVAL_SECONDS": TICK,
    "SCHEDULER_LOOKAHEAD_SECONDS": TICK,
    "SCHEDULER_BATCH_SIZE": 7,  # many small batches: the two schedulers interleave often
    "CHECK_TIMEOUT_SECONDS": 2.0,
    "CHECK_RETRY_INTERVALS": (),
    "ALLOWED_PRIVATE_NETWORKS": LOOPBACK,
}


@pytest.fixture
def two_scheduler_apps(make_app, redis_url):
    """The worker's app over an empty database, and one app (one engine) per scheduler."""
    main = make_app(**TWO_SCHEDULERS)
    for app in fresh(main, redis_url):
        yield [make_app(**TWO_SCHEDULERS), make_app(**TWO_SCHEDULERS), app]


def check_at_their_time(due: list[tuple[float, list[str]]], pool: ThreadPoolExecutor, settings: ProbeSettings) -> None:
    """What a worker does with the claims, each at its simulated time: probe for real, record."""
    targets = {target.endpoint_id: target for target in load_targets([claim for _, claim in due])}
    runs = [(runs_at, targets[uuid.UUID(claim[0])]) for runs_at, claim in due]
    results = pool.map(lambda run: probe(run[1].url, settings), runs)
    record_outcomes(
        [
            Outcome(target, result, 1, datetime.fromtimestamp(runs_at, UTC) + timedelta(milliseconds=result.latency_ms))
            for (runs_at, target), result in zip(runs, results, strict=True)
        ]
    )
    db.session.remove()


@pytest.mark.postgres  # two schedulers rely on SELECT … FOR UPDATE SKIP LOCKED
def test_two_schedulers_for_ten_minutes_check_every_slot_exactly_once(two_scheduler_apps, clock):
    apps = two_scheduler_apps
    main = apps[2]
    server = Server(standard_routes())
    try:
        with main.app_context():
            team = make_team("Two schedulers")
            intervals = {}
            with system_scope():
                for number in range(ENDPOINTS):
                    endpoint = Endpoint(
                        id=uuid.uuid4(),
                        tenant_id=team.id,
                        name=f"e{number}",
                        url=server.url(f"/ok?n={number}"),
                        interval_minutes=(1, 1, 2)[number % 3],
                    )
                    db.session.add(endpoint)
                    intervals[endpoint.id] = endpoint.interval_minutes
                db.session.commit()
            before = db.session.scalar(select(func.count(Endpoint.id)).execution_options(system_scope=True))

        start = datetime.fromtimestamp(int(time.time()), UTC)
        rounds = SIMULATED_MINUTES * 60 // TICK
        offsets = (0.0, 2.0)  # the second scheduler ticks 2 s after the first: their windows overlap
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def run_scheduler(index: int) -> None:
            try:
                with apps[index].app_context():
                    for number in range(rounds):
                        barrier.wait(timeout=120)
                        clock.set(start + timedelta(seconds=number * TICK + offsets[index]))
                        schedule_endpoint_checks()
                        db.session.remove()
                        barrier.wait(timeout=120)
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=run_scheduler, args=(index,), daemon=True) for index in range(2)]
        for thread in threads:
            thread.start()

        settings = ProbeSettings(timeout=2.0, allowed_networks=LOOPBACK, user_agent="monitorapp-faults")
        enqueued: list[tuple[uuid.UUID, float]] = []  # (endpoint, runs at)
        pending: list[tuple[float, list[str]]] = []  # claims enqueued, not yet checked
        in_flight_twice = 0
        with main.app_context(), ThreadPoolExecutor(8) as pool:
            for number in range(rounds):
                try:
                    barrier.wait(timeout=120)  # both schedulers tick...
                    barrier.wait(timeout=120)  # ...and are done
                except threading.BrokenBarrierError:
                    pytest.fail(f"a scheduler failed: {errors!r}")
                waiting = {uuid.UUID(claim[0]) for _, claim in pending}
                for runs_at, claims in take_enqueued():
                    for claim in claims:
                        endpoint_id = uuid.UUID(claim[0])
                        in_flight_twice += endpoint_id in waiting
                        waiting.add(endpoint_id)
                        enqueued.append((endpoint_id, runs_at))
                        pending.append((runs_at, claim))
                # The worker: checks what is due before the next tick, at its time, for real.
                horizon = (start + timedelta(seconds=(number + 1) * TICK)).timestamp()
                due = sorted((item for item in pending if item[0] < horizon), key=lambda item: item[0])
                pending = [item for item in pending if item[0] >= horizon]
                if due:
                    try:
                        check_at_their_time(due, pool, settings)
                    except BaseException:
                        barrier.abort()  # the schedulers stop waiting for the next round
                        raise
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors

        # Zero duplicates: no (endpoint, slot) was enqueued twice, and no endpoint had two checks waiting.
        slots = Counter(
            (endpoint_id, slot_of(endpoint_id, intervals[endpoint_id], runs_at)) for endpoint_id, runs_at in enqueued
        )
        duplicates = sum(count - 1 for count in slots.values() if count > 1)
        assert duplicates == 0
        assert in_flight_twice == 0
        # Zero missed: every endpoint was first checked at the first ticks, and each of its slots
        # from that check to the last tick was checked.
        first_round = (start + timedelta(seconds=TICK)).timestamp()
        firsts = defaultdict(lambda: float("inf"))
        for endpoint_id, runs_at in enqueued:
            firsts[endpoint_id] = min(firsts[endpoint_id], runs_at)
        assert set(firsts) == set(intervals)
        assert max(firsts.values()) < first_round
        last_tick = (start + timedelta(seconds=(rounds - 1) * TICK)).timestamp()
        by_endpoint = defaultdict(set)
        for endpoint_id, slot in slots:
            by_endpoint[endpoint_id].add(slot)
        missed = 0
        for endpoint_id, interval in intervals.items():
            first = slot_of(endpoint_id, interval, firsts[endpoint_id])
            last = slot_of(endpoint_id, interval, last_tick)
            missed += len(set(range(first, last + 1)) - by_endpoint[endpoint_id])
        assert missed == 0
        with main.app_context():
            recorded = db.session.scalar(select(func.count(CheckResult.id)).execution_options(system_scope=True))
            after = db.session.scalar(select(func.count(Endpoint.id)).execution_options(system_scope=True))
            db.session.rollback()
        checked_so_far = len(enqueued) - len(pending)
        assert recorded == checked_so_far
    finally:
        server.stop()
        with main.app_context():
            db.session.remove()

    record("simulated scheduler ticks (two schedulers)", 2 * rounds)
    add("checks enqueued in fault tests", len(enqueued))
    add("duplicate checks in fault tests", duplicates)
    add("missed check slots in fault tests", missed)
    add("rows lost in fault tests", (before - after) + (checked_so_far - recorded))
    add("faults survived", 1)


# -- a scheduler killed in the middle of a tick -------------------------------------------

KILLED_TICK_ENDPOINTS = 1500
KILLED_TICK_BATCH = 10  # 150 batches: 150 commits to land the kill between, 150 check jobs
KILLED_TICK = {
    "SCHEDULER_INTERVAL_SECONDS": 2,
    "SCHEDULER_BATCH_SIZE": KILLED_TICK_BATCH,
    "CHECK_TIMEOUT_SECONDS": 2.0,
    "CHECK_RETRY_INTERVALS": (),
    "CHECK_THREADS": 64,
}


@pytest.fixture
def killed_tick_app(make_app, redis_url):
    yield from fresh(make_app(ALLOWED_PRIVATE_NETWORKS=LOOPBACK, **KILLED_TICK), redis_url)


@pytest.fixture
def target():
    server = Server(standard_routes())
    yield server
    server.stop()


def id_with_a_far_slot(rng: random.Random) -> uuid.UUID:
    """A random id whose daily slot is 6 to 18 hours away: once checked, the endpoint is not due again here."""
    offset = (int(time.time()) + rng.randrange(6 * 3600, 18 * 3600)) % 86400
    value = offset + 86400 * rng.randrange((2**32 - offset) // 86400)
    return uuid.UUID(f"{value:08x}" + uuid.uuid4().hex[8:])


def insert_endpoints(team_id: uuid.UUID, count: int, url: str) -> list[uuid.UUID]:
    """`count` never-checked endpoints with a daily interval, in one statement."""
    rng = random.Random()
    now = utcnow()
    rows = [
        {
            "id": id_with_a_far_slot(rng),
            "tenant_id": team_id,
            "name": f"e{number}",
            "url": f"{url}?n={number}",
            "interval_minutes": 1440,
            "paused": False,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        for number in range(count)
    ]
    with system_scope():
        db.session.execute(insert(Endpoint).execution_options(system_scope=True), rows)
        db.session.commit()
    return [row["id"] for row in rows]


def claimed_count() -> int:
    count = db.session.scalar(
        select(func.count(Endpoint.id)).where(Endpoint.last_enqueued_at.is_not(None)).execution_options(system_scope=True)
    )
    db.session.rollback()
    return count


def claim_columns() -> dict[uuid.UUID, tuple[datetime, datetime]]:
    rows = db.session.execute(
        select(Endpoint.id, Endpoint.last_enqueued_at, Endpoint.next_check_at).execution_options(system_scope=True)
    ).all()
    db.session.rollback()
    return {row.id: (row.last_enqueued_at, row.next_check_at) for row in rows}


def checks_per_endpoint() -> Counter:
    rows = db.session.execute(select(CheckResult.endpoint_id).execution_options(system_scope=True)).scalars().all()
    db.session.rollback()
    return Counter(rows)


def enqueued_endpoints() -> Counter:
    return Counter(uuid.UUID(claim[0]) for _, _, claims in enqueued_jobs() for claim in claims)


def kill_between_commit_and_enqueue(tick_runner, attempts: int = 300) -> bool:
    """kill -9 the tick's process at the worst moment: a batch claimed and committed, not yet enqueued.

    The process is stopped (SIGSTOP) at arbitrary moments and looked at: every batch of the
    tick is one job of exactly `KILLED_TICK_BATCH` claims, so more claims committed than
    enqueued means it stands between the two. Returns whether that moment was found (if not,
    the kill lands wherever the last look left it, which must be survived as well).
    """
    rng = random.Random()
    queue = get_queue(CHECKS_QUEUE)
    # SQLite: a process stopped inside its commit holds the file's lock; look with a short timeout.
    engine = create_engine(db.engine.url, connect_args={"timeout": 0.2}) if db.engine.dialect.name == "sqlite" else db.engine
    claimed = select(func.count(Endpoint.id)).where(Endpoint.last_enqueued_at.is_not(None))
    try:
        for attempt in range(attempts):
            tick_runner.pause()
            try:
                with engine.connect() as connection:
                    in_the_window = connection.scalar(claimed) > queue.count * KILLED_TICK_BATCH
            except OperationalError:
                in_the_window = False
            if in_the_window or attempt == attempts - 1:
                tick_runner.kill()  # while it stands still: the state just seen is the state it dies in
                return in_the_window
            tick_runner.resume()
            time.sleep(rng.uniform(0, 0.01))
    finally:
        if engine is not db.engine:
            engine.dispose()
    return False


def test_a_scheduler_killed_mid_tick_loses_no_endpoint_and_checks_none_twice(
    killed_tick_app, app_processes, process_env, target, clock
):
    app = killed_tick_app
    env = process_env(ALLOWED_PRIVATE_NETWORKS="127.0.0.1/32", **KILLED_TICK)
    with app.app_context():
        team = make_team("Killed tick")
        everyone = set(insert_endpoints(team.id, KILLED_TICK_ENDPOINTS, target.url("/ok")))
        grace = timedelta(seconds=grace_seconds())

    # The tick runs in a worker on the default queue; the checks queue is left alone for now.
    tick_runner = app_processes.worker(env, queues=[DEFAULT_QUEUE], name="tick-runner-1", wait=False)
    first_scheduler = app_processes.scheduler(env, name="scheduler-1", wait=False)
    app_processes.wait_ready(tick_runner, first_scheduler)
    with app.app_context():
        wait_until(lambda: claimed_count() >= KILLED_TICK_ENDPOINTS // 5, 120, 0.02, "the tick to be under way")
        hit_the_window = kill_between_commit_and_enqueue(tick_runner)
        first_scheduler.kill()
        claimed_at_kill = claimed_count()
        assert claimed_at_kill < KILLED_TICK_ENDPOINTS, "the tick ended before the kill"
        killed_tick_at = min(claimed for claimed, _ in claim_columns().values() if claimed is not None)

    # Restart both; the new tick claims what the killed one had not.
    second_runner = app_processes.worker(env, queues=[DEFAULT_QUEUE], name="tick-runner-2", wait=False)
    second_scheduler = app_processes.scheduler(env, name="scheduler-2", wait=False)
    app_processes.wait_ready(second_runner, second_scheduler)
    with app.app_context():
        wait_until(lambda: claimed_count() == KILLED_TICK_ENDPOINTS, 120, 0.2, "every endpoint to be claimed")
        wait_until(
            lambda: re.search(r"scheduler tick .*claimed=[1-9]", second_runner.output()), 60, 0.2, "the tick to end"
        )
        second_scheduler.kill()
        second_runner.kill()
        enqueued = enqueued_endpoints()
        duplicates = sum(count - 1 for count in enqueued.values())
        assert duplicates == 0, "an endpoint was enqueued twice"
        # Claimed and committed by the killed tick, but not enqueued: at most the batch it was in.
        held = everyone - set(enqueued)
        assert len(held) == (KILLED_TICK_BATCH if hit_the_window else 0)
        columns = claim_columns()
        for endpoint_id in held:  # held by the lost claim until its grace period ends, then due again
            claimed, due = columns[endpoint_id]
            assert claimed == killed_tick_at and due == claimed + grace

    # A worker checks what was enqueued.
    checker = app_processes.worker(env, queues=[CHECKS_QUEUE], name="checker")
    with app.app_context():
        wait_until(lambda: sum(checks_per_endpoint().values()) >= len(enqueued), 180, 0.5, "the enqueued checks")
        assert checker.terminate() == 0

        # The grace period of the killed claims passes: the next tick claims exactly those.
        clock.set(killed_tick_at + grace)
        reclaimed = schedule_endpoint_checks()
        assert set(enqueued_endpoints()) == held
        assert reclaimed == len(held)
        clock.set(None)
        run_worker()  # checks them, in this process

        checks = checks_per_endpoint()
        lost = len(everyone - set(checks))
        checked_twice = sum(count - 1 for count in checks.values())
        assert lost == 0
        assert checked_twice == 0
        after = len(claim_columns())

    record("endpoints claimed when the tick was killed", claimed_at_kill)
    record("endpoints held by the killed tick until its grace period", len(held))
    record("tick killed between a claim's commit and its enqueue", "yes" if hit_the_window else "no")
    add("checks enqueued in fault tests", len(enqueued) + len(held))
    add("duplicate checks in fault tests", duplicates + checked_twice)
    add("rows lost in fault tests", lost + (KILLED_TICK_ENDPOINTS - after))
    add("faults survived", 1)
