"""The scheduler: what is due, claiming in batches, recovery, registration, the heartbeat."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from rq_scheduler import Scheduler
from sqlalchemy import select, update

from monitorapp.extensions import db
from monitorapp.models import Endpoint, utcnow
from monitorapp.monitoring.history import HISTORY_JOB_ID
from monitorapp.monitoring.scheduler import (
    TICK_JOB_ID,
    AppScheduler,
    claim_due_batch,
    grace_seconds,
    next_slot,
    register_recurring_jobs,
    schedule_endpoint_checks,
    slot_offset,
)
from monitorapp.queues import CHECKS_QUEUE, DEFAULT_QUEUE, SCHEDULER_HEARTBEAT_KEY, get_queue, get_redis
from monitorapp.tenancy import system_scope
from tests.monitoring.conftest import make_endpoint, reload


def set_due(endpoint, when) -> None:
    with system_scope():
        db.session.execute(
            update(Endpoint)
            .where(Endpoint.id == endpoint.id)
            .values(next_check_at=when)
            .execution_options(system_scope=True)
        )
        db.session.commit()


def claimed_ids(claims) -> set:
    return {claim.endpoint_id for claim in claims}


def queued_claims() -> list[str]:
    return [pair[0] for job in get_queue(CHECKS_QUEUE).get_jobs() for pair in job.args[0]]


def test_it_claims_what_is_due_and_nothing_else(ctx, team_a):
    now = utcnow()
    never_checked = make_endpoint(team_a, "http://a.example/")
    due = make_endpoint(team_a, "http://b.example/")
    not_yet = make_endpoint(team_a, "http://c.example/")
    paused = make_endpoint(team_a, "http://d.example/", paused=True)
    set_due(due, now - timedelta(seconds=1))
    set_due(not_yet, now + timedelta(seconds=30))
    set_due(paused, now - timedelta(minutes=10))

    with system_scope():
        claims = claim_due_batch(now, 100)

    assert claimed_ids(claims) == {never_checked.id, due.id}


def test_a_claim_stamps_the_endpoint_and_holds_it(ctx, team_a):
    now = utcnow()
    endpoint = make_endpoint(team_a, "http://a.example/")
    with system_scope():
        [claim] = claim_due_batch(now, 10)
        assert claim_due_batch(now, 10) == []
    row = reload(endpoint)
    assert row.last_enqueued_at == now == claim.claimed_at
    assert row.next_check_at == now + timedelta(seconds=grace_seconds())


def test_it_claims_in_batches_and_enqueues_every_due_endpoint_once(ctx, team_a):
    ctx.config["SCHEDULER_BATCH_SIZE"] = 3
    endpoints = [make_endpoint(team_a, f"http://e{n}.example/") for n in range(7)]

    assert schedule_endpoint_checks() == 7
    assert sorted(queued_claims()) == sorted(str(endpoint.id) for endpoint in endpoints)
    assert schedule_endpoint_checks() == 0


def test_endpoints_created_together_fire_at_different_moments(ctx):
    offsets = Counter(slot_offset(uuid.uuid4(), 5) for _ in range(200))
    # Spread over the 300 s of a 5-minute interval, not bunched in one second.
    assert len(offsets) > 100
    assert max(offsets.values()) <= 8


def test_the_next_slot_keeps_the_endpoints_phase(ctx):
    endpoint_id = uuid.uuid4()
    now = utcnow()
    first = next_slot(endpoint_id, 5, now)
    second = next_slot(endpoint_id, 5, first)
    assert now < first <= now + timedelta(minutes=5)
    assert second - first == timedelta(minutes=5)
    assert int(first.timestamp()) % 300 == slot_offset(endpoint_id, 5)


def test_a_claim_whose_check_never_ran_is_claimed_again_after_the_grace_period(ctx, team_a):
    endpoint = make_endpoint(team_a, "http://a.example/")
    start = utcnow()
    grace = timedelta(seconds=grace_seconds())
    with system_scope():
        assert claimed_ids(claim_due_batch(start, 10)) == {endpoint.id}  # ...and the job is lost
        assert claim_due_batch(start + grace - timedelta(seconds=1), 10) == []
        assert claimed_ids(claim_due_batch(start + grace, 10)) == {endpoint.id}


def test_a_tick_that_cannot_reach_redis_gives_its_claims_back(make_app, team_a, refused_port):
    endpoint = make_endpoint(team_a, "http://a.example/")
    dead_redis = make_app(REDIS_URL=f"redis://127.0.0.1:{refused_port}/0")
    with dead_redis.app_context():
        with pytest.raises(Exception):  # noqa: B017  (whatever redis-py raises)
            schedule_endpoint_checks()
        row = reload(endpoint)
        assert row.next_check_at == row.last_enqueued_at  # due again at the next tick


def test_the_tick_writes_the_heartbeat_read_by_readiness(ctx, client):
    get_redis().delete(SCHEDULER_HEARTBEAT_KEY)
    schedule_endpoint_checks()
    assert float(get_redis().get(SCHEDULER_HEARTBEAT_KEY)) == pytest.approx(time.time(), abs=5)
    body = client.get("/health/ready/").get_json()
    assert body["checks"]["scheduler"]["ok"] is True


def test_registration_is_idempotent_across_restarts(ctx):
    register_recurring_jobs(Scheduler(queue_name=DEFAULT_QUEUE, connection=get_redis()))
    registered = Scheduler(queue_name=DEFAULT_QUEUE, connection=get_redis()).count()
    for _ in range(3):  # three more scheduler processes starting one after another
        register_recurring_jobs(Scheduler(queue_name=DEFAULT_QUEUE, connection=get_redis()))
    scheduler = Scheduler(queue_name=DEFAULT_QUEUE, connection=get_redis())
    assert scheduler.count() == registered
    assert {TICK_JOB_ID, HISTORY_JOB_ID} <= {job.id for job in scheduler.get_jobs()}
    tick = next(job for job in scheduler.get_jobs() if job.id == TICK_JOB_ID)
    assert tick.meta["interval"] == ctx.config["SCHEDULER_INTERVAL_SECONDS"]
    assert tick.result_ttl > ctx.config["SCHEDULER_INTERVAL_SECONDS"]


def test_the_scheduler_registers_its_jobs_again_after_redis_was_flushed(ctx):
    scheduler = AppScheduler(ctx, queue_name=DEFAULT_QUEUE, connection=get_redis())
    register_recurring_jobs(scheduler)
    get_redis().flushdb()

    scheduler.enqueue_jobs()  # one pass of the scheduler's loop

    assert TICK_JOB_ID in scheduler
    assert HISTORY_JOB_ID in scheduler
    assert TICK_JOB_ID in get_queue(DEFAULT_QUEUE).job_ids  # and the tick runs at once


@pytest.mark.postgres
@pytest.mark.postgres  # SKIP LOCKED needs PostgreSQL
def test_two_schedulers_ticking_at_once_never_claim_the_same_endpoint(make_app, ctx, team_a):
    endpoints = [make_endpoint(team_a, f"http://e{n}.example/") for n in range(60)]
    apps = [make_app(), make_app()]  # two engines: two real connections
    rounds = 25
    claims: list[list[list]] = [[[] for _ in range(rounds)] for _ in apps]
    barrier = threading.Barrier(len(apps))

    def scheduler(index: int) -> None:
        with apps[index].app_context(), system_scope():
            for number in range(rounds):
                barrier.wait()
                now = utcnow()
                while batch := claim_due_batch(now, 7):
                    claims[index][number].extend(claim.endpoint_id for claim in batch)
                barrier.wait()
                if index == 0:  # make everything due again for the next round
                    db.session.execute(
                        update(Endpoint).values(next_check_at=None).execution_options(system_scope=True)
                    )
                    db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=scheduler, args=(index,)) for index in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    everyone = {endpoint.id for endpoint in endpoints}
    for number in range(rounds):
        first, second = claims[0][number], claims[1][number]
        assert not set(first) & set(second), f"round {number}: claimed twice"
        assert len(first) + len(second) == len(everyone)
        assert set(first) | set(second) == everyone


@pytest.mark.postgres
@pytest.mark.postgres  # the 100k-row memory test runs on PostgreSQL
def test_claiming_a_hundred_thousand_endpoints_keeps_memory_flat(ctx, team_a):
    import gc
    import tracemalloc

    insert_endpoints(team_a.id, 100_000)
    ctx.config["SCHEDULER_BATCH_SIZE"] = 1000

    def peak_while_claiming(limit_batches: int | None = None) -> int:
        tracemalloc.start()
        tracemalloc.reset_peak()
        with system_scope():
            now = utcnow()
            count = 0
            while claim_due_batch(now, 1000) and (limit_batches is None or count < limit_batches):
                count += 1
                # Each commit leaves a little cyclic garbage (SQLAlchemy's and psycopg's
                # bookkeeping) that the collector frees on its own schedule; what must stay
                # flat is what a batch holds and what survives it, not the collector's timing.
                gc.collect()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, count

    small_peak, _ = peak_while_claiming(limit_batches=5)  # 5 000 endpoints
    full_peak, batches = peak_while_claiming()  # the other 95 000
    assert batches >= 94
    assert full_peak < small_peak * 2, (small_peak, full_peak)
    remaining = db.session.execute(
        select(Endpoint.id).where(Endpoint.last_enqueued_at.is_(None)).execution_options(system_scope=True)
    ).all()
    assert remaining == []


def insert_endpoints(team_id, count: int) -> None:
    """Bulk-insert endpoints with COPY (fast, and nothing held in Python)."""
    connection = db.session.connection().connection.driver_connection
    now = utcnow()
    with connection.cursor() as cursor, cursor.copy(
        "COPY endpoint (id, tenant_id, name, url, interval_minutes, paused, status, created_at, updated_at)"
        " FROM STDIN"
    ) as copy:
        for number in range(count):
            copy.write_row(
                (uuid.uuid4(), team_id, f"e{number}", f"http://e{number}.example/", 5, False, "pending", now, now)
            )
    db.session.commit()
