"""The scheduler: claim due endpoints, then enqueue their checks.

Every tick (`schedule_endpoint_checks`, registered with rq-scheduler under a
stable id) claims due endpoints in batches with
`SELECT … FOR UPDATE SKIP LOCKED`, stamps `last_enqueued_at`, commits, and
only then enqueues — never inside an open transaction. Two schedulers at once
never claim the same row; memory stays flat because only one batch is held
at a time.

Due times sit on a per-endpoint grid: slot k of an endpoint is
`offset + k × interval` seconds since the epoch, where `offset` comes from the
endpoint's id. Endpoints created in the same second therefore fire at
different moments, and an endpoint keeps its phase forever.

A claim holds the endpoint: its due time moves to now + `grace_seconds()`,
so it is not claimed again while its check (retries included) is queued or
running. When the check records its result it moves the due time on to the
next slot — only if `last_enqueued_at` still equals its claim, so an older
check never reschedules a newer claim (see jobs.py). A check that never
reports (worker killed, Redis flushed) is thus claimed again once the grace
period has passed; nothing stays "enqueued" forever.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from rq_scheduler import Scheduler
from sqlalchemy import or_, select, update

from monitorapp.extensions import db
from monitorapp.logging import PERFORMANCE, log_event
from monitorapp.models import Endpoint, utcnow
from monitorapp.queues import DEFAULT_QUEUE, REDIS_UNAVAILABLE, SCHEDULER_HEARTBEAT_KEY, get_redis
from monitorapp.tenancy import system_scope

log = logging.getLogger(__name__)
TICK_JOB_ID = "monitorapp-schedule-endpoint-checks"


@dataclass(frozen=True)
class Claim:
    endpoint_id: uuid.UUID
    claimed_at: datetime
    due_at: datetime


def slot_offset(endpoint_id: uuid.UUID, interval_minutes: int) -> int:
    return int(endpoint_id.hex[:8], 16) % (interval_minutes * 60)


def next_slot(endpoint_id: uuid.UUID, interval_minutes: int, after: datetime) -> datetime:
    """The first due time of this endpoint strictly after `after`."""
    period = interval_minutes * 60
    offset = slot_offset(endpoint_id, interval_minutes)
    seconds = after.timestamp()
    k = int((seconds - offset) // period) + 1
    return datetime.fromtimestamp(offset + k * period, UTC)


def grace_seconds() -> int:
    """How long a claimed check may take, retries included, before it is claimed again."""
    config = current_app.config
    retries = config["CHECK_RETRY_INTERVALS"]
    timeout = config["CHECK_TIMEOUT_SECONDS"]
    return int(sum(retries) + (len(retries) + 1) * timeout + 2 * config["SCHEDULER_INTERVAL_SECONDS"] + 60)


def claim_due_batch(now: datetime, limit: int, until: datetime | None = None) -> list[Claim]:
    """Claim up to `limit` endpoints due by now (or before `until`) and commit.

    The rows stay locked until the commit, so a second scheduler skips them.
    """
    due = Endpoint.next_check_at <= now if until is None else Endpoint.next_check_at < until
    query = (
        # `NOT paused` (not `IS false`) so PostgreSQL can use the partial index ix_endpoint_due.
        select(Endpoint.id, Endpoint.next_check_at)
        .where(~Endpoint.paused, or_(Endpoint.next_check_at.is_(None), due))
        .order_by(Endpoint.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Endpoint)
        .execution_options(system_scope=True)
    )
    try:
        rows = db.session.execute(query).all()
        if rows:
            # Every claimed row gets the same values: one statement for the batch.
            db.session.execute(
                update(Endpoint)
                .where(Endpoint.id.in_([row.id for row in rows]))
                .values(last_enqueued_at=now, next_check_at=now + timedelta(seconds=grace_seconds()))
                .execution_options(system_scope=True, synchronize_session=False)
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return [Claim(row.id, now, row.next_check_at or now) for row in rows]


def release_claims(claims: list[Claim]) -> None:
    """Make claimed endpoints due again at once (their checks could not be enqueued)."""
    for claim in claims:
        db.session.execute(
            update(Endpoint)
            .where(Endpoint.id == claim.endpoint_id, Endpoint.last_enqueued_at == claim.claimed_at)
            .values(next_check_at=claim.claimed_at)
            .execution_options(system_scope=True)
        )
    db.session.commit()


def schedule_endpoint_checks() -> int:
    """Claim every due endpoint and enqueue its check; return how many."""
    from monitorapp.monitoring.jobs import enqueue_checks

    batch_size = current_app.config["SCHEDULER_BATCH_SIZE"]
    started = time.monotonic()
    now = utcnow()
    # Claim what falls due before the next tick too; those checks wait in RQ's
    # scheduled registry until their second, so they start on time.
    until = now + timedelta(seconds=current_app.config["SCHEDULER_LOOKAHEAD_SECONDS"])
    claimed = 0
    oldest_due: datetime | None = None
    with system_scope():
        while True:
            batch = claim_due_batch(now, batch_size, until)
            if not batch:
                break
            oldest = min(claim.due_at for claim in batch)
            oldest_due = oldest if oldest_due is None else min(oldest_due, oldest)
            try:
                enqueue_checks(batch)
            except Exception:
                # Redis is down: give the endpoints back rather than hold them for the grace period.
                release_claims(batch)
                raise
            claimed += len(batch)
            if len(batch) < batch_size:
                break
    duration = time.monotonic() - started
    lag = max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0
    _beat()
    _record_tick(duration, claimed, lag)
    return claimed


def _beat() -> None:
    try:
        get_redis().set(SCHEDULER_HEARTBEAT_KEY, time.time())
    except Exception as exc:  # the tick's work is done; a missed beat only shows on /health/ready/
        log.warning("scheduler heartbeat not written: %s", exc)


def _record_tick(duration: float, claimed: int, lag: float) -> None:
    from monitorapp import metrics
    from monitorapp.monitoring import stats  # noqa: F401  (declares the series)

    log_event(
        PERFORMANCE,
        "scheduler tick",
        tick_seconds=round(duration, 3),
        claimed=claimed,
        lag_seconds=round(lag, 1),
    )
    metrics.observe("monitorapp_scheduler_tick_seconds", duration)
    metrics.set_gauge("monitorapp_scheduler_lag_seconds", lag)
    metrics.inc("monitorapp_scheduler_claimed_total", claimed)


def register_tick(scheduler) -> None:
    """Register the tick under its stable id, replacing any earlier registration."""
    interval = current_app.config["SCHEDULER_INTERVAL_SECONDS"]
    scheduler.cancel(TICK_JOB_ID)
    scheduler.schedule(
        scheduled_time=datetime.now(UTC).replace(tzinfo=None),
        func=schedule_endpoint_checks,
        interval=interval,
        repeat=None,
        id=TICK_JOB_ID,
        queue_name=DEFAULT_QUEUE,
        result_ttl=interval * 10,
        timeout=max(interval * 4, 300),
    )


def register_recurring_jobs(scheduler) -> None:
    """Register the tick and the daily history job (idempotent: stable ids)."""
    from monitorapp.monitoring.history import register_history_job
    from monitorapp.notify.sending import register_reminder_job

    register_tick(scheduler)
    register_history_job(scheduler)
    register_reminder_job(scheduler)


def recurring_jobs_missing(scheduler) -> bool:
    from monitorapp.monitoring.history import HISTORY_JOB_ID
    from monitorapp.notify.sending import REMINDER_JOB_ID

    return any(job_id not in scheduler for job_id in (TICK_JOB_ID, HISTORY_JOB_ID, REMINDER_JOB_ID))


class AppScheduler(Scheduler):
    """rq-scheduler that puts the recurring jobs back whenever Redis has lost them."""

    def __init__(self, app, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def enqueue_jobs(self):
        # A flushed or replaced Redis forgets the schedule; register it again before the pass.
        with self.app.app_context():
            if recurring_jobs_missing(self):
                log.warning("scheduler: recurring jobs missing from Redis, registering them again")
                register_recurring_jobs(self)
        return super().enqueue_jobs()

    def run(self, burst=False):
        """rq-scheduler's loop, which exits on a Redis error: wait for Redis and start it again."""
        while True:
            try:
                return super().run(burst)
            except REDIS_UNAVAILABLE as exc:
                name = type(exc).__name__
                log.warning("scheduler: Redis unreachable (%s), trying again in %s s", name, self._interval)
                # The record of the old name may outlive the outage and would refuse a second start.
                self.name = uuid.uuid4().hex
                time.sleep(self._interval)


def run_scheduler() -> None:
    app = current_app._get_current_object()
    interval = app.config["SCHEDULER_INTERVAL_SECONDS"]
    scheduler = AppScheduler(app, queue_name=DEFAULT_QUEUE, connection=get_redis(), interval=min(interval, 5))
    register_recurring_jobs(scheduler)
    app.logger.info("scheduler started: tick every %s s", interval)
    # rq-scheduler's cron helper warns on every loop about a future default of the
    # crontab package; our cron strings are UTC either way.
    warnings.filterwarnings("ignore", category=FutureWarning, module="rq_scheduler")
    scheduler.run()


def stamp_first_claim(endpoint: Endpoint, now: datetime | None = None) -> Claim:
    """Mark a new (or resumed) endpoint as claimed now, inside the caller's transaction.

    The caller commits, then calls `enqueue_after_commit` with the claim.
    """
    now = now or utcnow()
    endpoint.last_enqueued_at = now
    endpoint.next_check_at = now + timedelta(seconds=grace_seconds())
    return Claim(endpoint.id, now, now)


def enqueue_after_commit(claim: Claim) -> bool:
    """Enqueue a claimed check; if Redis is down, leave it for the next tick.

    Returns False (and logs a warning) when the check could not be enqueued;
    the endpoint is then made due at once so the scheduler's next tick picks it up.
    """
    from monitorapp.monitoring.jobs import enqueue_checks

    try:
        enqueue_checks([claim])
        return True
    except Exception as exc:
        log.warning("check not enqueued, the next scheduler tick will pick it up: %s", type(exc).__name__)
        release_claims([claim])
        return False
