"""RQ jobs for checks: batches of claimed endpoints, retrying single checks, the dead letter.

`enqueue_checks` is the one way in (the scheduler and endpoint creation call
it): it splits the claims into `check_batch` jobs. A batch hands its
endpoints to the worker's `CheckRunner` (runner.py), which probes many at once
and records what they found in bulk.

A network failure (DNS, connect, timeout, TLS) does not count yet: the
endpoints that failed together are tried again by one `check_batch` job
scheduled in RQ after the next of `CHECK_RETRY_INTERVALS`, on the runner
too — a hanging target must not hold a worker's main loop for a whole
deadline per retry. After the last try the check is recorded, a
`ping_endpoint` job for the endpoint goes into RQ's failed registry (the dead
letter: requeueing it checks the endpoint again) and the failure is
announced. An HTTP error status counts at once.

`ping_endpoint` checks one endpoint in the job itself, raising on a network
failure so that RQ's `Retry` (if it was enqueued with one) tries again;
`on_check_failure` records and announces its last failure.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from rq import Callback, get_current_job
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from sqlalchemy import bindparam, case, insert, select, update

from monitorapp import metrics, summaries
from monitorapp.extensions import db
from monitorapp.logging import AUDIT, CHECKS, log_event, redact_url
from monitorapp.models import CheckResult, Endpoint, UTCDateTime, utcnow
from monitorapp.monitoring import stats  # noqa: F401  (declares the series recorded here)
from monitorapp.monitoring.incidents import OpenIncidents, apply_check_result
from monitorapp.monitoring.probe import ProbeResult, ProbeSettings, probe
from monitorapp.monitoring.scheduler import Claim, next_slot
from monitorapp.notify.sending import enqueue_notifications, notify_check_failed
from monitorapp.queues import CHECKS_QUEUE, get_queue, get_redis
from monitorapp.tenancy import system_scope

log = logging.getLogger(__name__)
# Endpoints per `check_batch` job. RQ spends about 20 Redis round trips on each job
# whatever its size; at 50 they cost a worker's main thread 0.3 ms of CPU per check,
# at 200 0.15 ms (the check-throughput benchmark, bench/throughput.py). A batch is
# spread over the runner's threads, so a bigger one holds up no check.
BATCH_SIZE = 200
DEAD_LETTER_TTL = 7 * 24 * 3600  # a failed check job stays in RQ's failed registry a week
RUNNER_KEY = "monitorapp.check_runner"


@dataclass(frozen=True)
class Target:
    """An endpoint about to be checked, with the claim that asked for it."""

    endpoint_id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    claimed_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    target: Target
    result: ProbeResult
    attempt: int
    checked_at: datetime


class CheckFailed(Exception):
    """A network failure in `ping_endpoint`; RQ retries, `on_check_failure` records the last one."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"check failed: {outcome.result.error_kind}")
        self.outcome = outcome


# -- entry points -------------------------------------------------------------


def enqueue_checks(claims: list[Claim]) -> None:
    """Enqueue checks for the claims, in batches. Raises if Redis is unreachable.

    Claims already due go on the queue at once; claims due later in the
    scheduler's look-ahead window wait in RQ's scheduled registry until their
    second comes, so a check starts at its due time rather than at the next
    tick (the lag benchmark, bench/lag.py).
    """
    queue = get_queue(CHECKS_QUEUE)
    now = utcnow()
    due_now = [claim for claim in claims if claim.due_at <= now]
    later: dict[datetime, list[Claim]] = defaultdict(list)
    for claim in claims:
        if claim.due_at > now:
            later[claim.due_at.replace(microsecond=0)].append(claim)
    if due_now:
        queue.enqueue_many(
            [
                queue.prepare_data(check_batch, args=(_claim_args(batch),), result_ttl=0, failure_ttl=DEAD_LETTER_TTL)
                for batch in _batches(due_now)
            ]
        )
    if later:
        with queue.connection.pipeline() as pipe:
            for when, due in later.items():
                for batch in _batches(due):
                    job = queue.create_job(
                        check_batch, args=(_claim_args(batch),), result_ttl=0, failure_ttl=DEAD_LETTER_TTL
                    )
                    queue.schedule_job(job, when, pipeline=pipe)
            pipe.execute()


def _batches(claims: list[Claim]) -> list[list[Claim]]:
    return [claims[start : start + BATCH_SIZE] for start in range(0, len(claims), BATCH_SIZE)]


def _claim_args(batch: list[Claim]) -> list[list[str]]:
    return [[str(claim.endpoint_id), claim.claimed_at.isoformat()] for claim in batch]


def check_batch(claims: list[list[str]], attempt: int = 1) -> int:
    """Check a batch of claimed endpoints concurrently; return how many were started."""
    from monitorapp.monitoring.runner import CheckRunner

    targets = load_targets(claims)
    runner = current_app.extensions.get(RUNNER_KEY)
    if runner is not None:
        for target in targets:
            runner.submit(target, attempt)
        return len(targets)
    # Outside the app's own worker (a plain `rq worker`): run the batch here and wait for it.
    runner = CheckRunner(current_app._get_current_object())
    try:
        for target in targets:
            runner.submit(target, attempt)
    finally:
        runner.close()
    return len(targets)


def ping_endpoint(endpoint_id: str, claimed_at: str | None = None, first_attempt: int = 1) -> None:
    """Check one endpoint; raise on a network failure so that RQ retries it."""
    job = get_current_job()
    attempt = first_attempt + _retries_used(job)
    targets = load_targets([[endpoint_id, claimed_at]])
    if not targets:
        return  # deleted or paused since it was enqueued
    result = probe(targets[0].url, probe_settings())
    outcome = Outcome(targets[0], result, attempt, utcnow())
    if result.is_network_failure:
        if job is not None and job.retries_left:
            _report(outcome, retry=True)
        raise CheckFailed(outcome)
    record_results([outcome])


def on_check_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ calls this on every failure of a `ping_endpoint` job; act on the last one."""
    if job.retries_left:
        return  # RQ tries again
    if not isinstance(exc_value, CheckFailed):
        log_event(AUDIT, "check job failed", level=logging.ERROR, job=job.id, error=exc_type.__name__)
        return
    outcome = exc_value.outcome
    if record_results([outcome]):
        announce_failure(outcome, key=job.id)


def announce_failure(outcome: Outcome, key: str) -> None:
    """Tell the team that a check still failed after its retries (`key` makes it once-only)."""
    notify_check_failed(
        endpoint_id=outcome.target.endpoint_id, error=outcome.result.message, attempts=outcome.attempt, key=key
    )
    log_event(
        AUDIT,
        "endpoint check failed after retries",
        level=logging.WARNING,
        endpoint=str(outcome.target.endpoint_id),
        team=str(outcome.target.tenant_id),
        error_kind=outcome.result.error_kind,
        attempts=outcome.attempt,
        notification="pending",
    )


# -- recording ----------------------------------------------------------------


def record_outcomes(outcomes: Sequence[Outcome]) -> None:
    """Record a runner's finished checks; network failures with tries left are tried again."""
    intervals = tuple(current_app.config["CHECK_RETRY_INTERVALS"])
    retries: dict[int, list[Outcome]] = defaultdict(list)
    final = []
    for outcome in outcomes:
        if outcome.result.is_network_failure and outcome.attempt <= len(intervals):
            retries[outcome.attempt].append(outcome)
        else:
            final.append(outcome)
    for attempt, failed in retries.items():
        _schedule_retry(failed, attempt + 1, intervals[attempt - 1])
    for outcome in record_results(final):
        if outcome.result.is_network_failure:
            _dead_letter(outcome)


def record_results(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Write the checks and the endpoints' `last_*` fields in one transaction.

    Endpoints deleted or paused meanwhile are skipped; the recorded outcomes
    are returned. The rows are locked in id order, so two recorders never
    deadlock and a concurrent edit waits for a few milliseconds.
    """
    if not outcomes:
        return []
    ids = sorted({outcome.target.endpoint_id for outcome in outcomes})
    with system_scope():
        try:
            rows = db.session.scalars(
                select(Endpoint)
                .where(Endpoint.id.in_(ids), ~Endpoint.paused)
                .order_by(Endpoint.id)
                .with_for_update()
                .execution_options(system_scope=True)
            ).all()
            live = {row.id: row for row in rows}
            statuses_before = {row.id: row.status for row in rows}
            recorded = [outcome for outcome in outcomes if outcome.target.endpoint_id in live]
            # Streaks, status and incidents (monitoring/incidents.py), on the locked rows.
            incidents = OpenIncidents(list(live))
            events = []
            with db.session.no_autoflush:
                for o in recorded:
                    events += apply_check_result(
                        live[o.target.endpoint_id],
                        ok=o.result.ok,
                        error=o.result.message,
                        checked_at=o.checked_at,
                        incidents=incidents,
                    )
            if recorded:
                # The endpoints' new state goes out in the one batched UPDATE below, so the
                # session must not flush them row by row as well (bench/throughput.py).
                states = {endpoint_id: _state(endpoint) for endpoint_id, endpoint in live.items()}
                moved_teams = {
                    endpoint.tenant_id
                    for endpoint_id, endpoint in live.items()
                    if endpoint.status != statuses_before[endpoint_id]
                }
                for endpoint in live.values():
                    db.session.expunge(endpoint)
                db.session.execute(insert(CheckResult), [_result_row(outcome) for outcome in recorded])
                db.session.execute(
                    _ENDPOINT_UPDATE,
                    [_endpoint_row(outcome, states[outcome.target.endpoint_id]) for outcome in recorded],
                )
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    if recorded:
        # New statuses move the teams' counts on the dashboard and in the API (summaries.py).
        summaries.forget(moved_teams)
    enqueue_notifications(events)
    _report_all(recorded)
    return recorded


_endpoints = Endpoint.__table__
_ENDPOINT_UPDATE = (
    update(_endpoints)
    .where(_endpoints.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        last_status_code=bindparam("b_status_code"),
        last_latency_ms=bindparam("b_latency_ms"),
        last_checked_at=bindparam("b_checked_at", type_=UTCDateTime()),
        last_error=bindparam("b_error"),
        consecutive_failures=bindparam("b_consecutive_failures"),
        consecutive_successes=bindparam("b_consecutive_successes"),
        failing_since=bindparam("b_failing_since", type_=UTCDateTime()),
        updated_at=_endpoints.c.updated_at,  # a check is not an edit
        # Only the check of the current claim moves the schedule on (see scheduler.py).
        next_check_at=case(
            (
                _endpoints.c.last_enqueued_at == bindparam("b_claimed_at", type_=UTCDateTime()),
                bindparam("b_next_check_at", type_=UTCDateTime()),
            ),
            else_=_endpoints.c.next_check_at,
        ),
    )
    .execution_options(system_scope=True)
)


def _result_row(outcome: Outcome) -> dict:
    result = outcome.result
    return {
        "endpoint_id": outcome.target.endpoint_id,
        "tenant_id": outcome.target.tenant_id,
        "checked_at": outcome.checked_at,
        "ok": result.ok,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "error_kind": result.error_kind,
        "message": result.message,
        "attempt": outcome.attempt,
    }


def _state(endpoint: Endpoint) -> dict:
    """The endpoint's state after `apply_check_result`, for the batched UPDATE."""
    return {
        "b_status": endpoint.status,
        "b_consecutive_failures": endpoint.consecutive_failures,
        "b_consecutive_successes": endpoint.consecutive_successes,
        "b_failing_since": endpoint.failing_since,
        "interval_minutes": endpoint.interval_minutes,
    }


def _endpoint_row(outcome: Outcome, state: dict) -> dict:
    result = outcome.result
    interval_minutes = state["interval_minutes"]
    return {
        "b_id": outcome.target.endpoint_id,
        "b_status": state["b_status"],
        "b_consecutive_failures": state["b_consecutive_failures"],
        "b_consecutive_successes": state["b_consecutive_successes"],
        "b_failing_since": state["b_failing_since"],
        "b_status_code": result.status_code,
        "b_latency_ms": result.latency_ms,
        "b_checked_at": outcome.checked_at,
        "b_error": result.message if not result.ok else None,
        "b_claimed_at": outcome.target.claimed_at,
        "b_next_check_at": next_slot(outcome.target.endpoint_id, interval_minutes, outcome.checked_at),
    }


def _report(outcome: Outcome, retry: bool = False) -> None:
    _report_all([outcome], retry)


def _report_all(outcomes: Sequence[Outcome], retry: bool = False) -> None:
    """One `monitors.checks` line per check run, and the check metrics for all of them.

    `status` is what a check found (up, down, or retry for a try RQ will
    repeat); the endpoint's own status also depends on its thresholds. The
    metrics go to Redis once per batch, not once per check (bench/throughput.py).
    """
    durations: dict[str, list[float]] = defaultdict(list)
    for outcome in outcomes:
        status = _log_check(outcome, retry)
        durations[status].append(outcome.result.latency_ms / 1000)
    for status, values in durations.items():
        metrics.inc("monitorapp_checks_total", len(values), result=status)
    metrics.observe_many(
        "monitorapp_check_duration_seconds", [value for values in durations.values() for value in values]
    )


def _log_check(outcome: Outcome, retry: bool) -> str:
    result = outcome.result
    status = "retry" if retry else ("up" if result.ok else "down")
    log_event(
        CHECKS,
        "check",
        endpoint=str(outcome.target.endpoint_id),
        team=str(outcome.target.tenant_id),
        url=redact_url(outcome.target.url),
        status=status,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        attempt=outcome.attempt,
        error_kind=result.error_kind,
    )
    return status


# -- helpers ------------------------------------------------------------------


def load_targets(claims: Iterable[Sequence[str | None]]) -> list[Target]:
    """The endpoints of `[endpoint_id, claimed_at]` pairs that still exist and are not paused."""
    claimed = {uuid.UUID(endpoint_id): claimed_at for endpoint_id, claimed_at in claims}
    rows = db.session.execute(
        select(Endpoint.id, Endpoint.tenant_id, Endpoint.url)
        .where(Endpoint.id.in_(list(claimed)), ~Endpoint.paused)
        .execution_options(system_scope=True)
    ).all()
    db.session.rollback()  # end the read: no transaction stays open while probes run
    return [
        Target(row.id, row.tenant_id, row.url, datetime.fromisoformat(claimed[row.id]) if claimed[row.id] else None)
        for row in rows
    ]


def probe_settings() -> ProbeSettings:
    # The runner's settings hold a loaded CA bundle; building one costs a few milliseconds.
    runner = current_app.extensions.get(RUNNER_KEY)
    return runner.settings if runner is not None else ProbeSettings.from_config(current_app.config)


def _retries_used(job) -> int:
    if job is None or job.retries_left is None:
        return 0
    return len(job.retry_intervals or []) - job.retries_left


def _schedule_retry(failed: list[Outcome], attempt: int, delay: int) -> None:
    """One `check_batch` job tries the endpoints that failed together again after `delay` s."""
    claims = [
        [str(outcome.target.endpoint_id), outcome.target.claimed_at.isoformat() if outcome.target.claimed_at else None]
        for outcome in failed
    ]
    options = {"args": (claims, attempt), "result_ttl": 0, "failure_ttl": DEAD_LETTER_TTL}
    queue = get_queue(CHECKS_QUEUE)
    try:
        if delay:
            queue.enqueue_in(timedelta(seconds=delay), check_batch, **options)
        else:
            queue.enqueue(check_batch, **options)
    except Exception as exc:  # the claims' grace period brings these endpoints back
        log.warning("retry of %d failed checks not enqueued: %s", len(failed), type(exc).__name__)
        return
    _report_all(failed, retry=True)


def _dead_letter(outcome: Outcome) -> None:
    """Leave the exhausted check in RQ's failed registry (requeue it to check again); announce it."""
    target = outcome.target
    job = Job.create(
        ping_endpoint,
        args=(str(target.endpoint_id), None),
        connection=get_redis(),
        origin=CHECKS_QUEUE,
        description=f"check of endpoint {target.endpoint_id}",
        failure_ttl=DEAD_LETTER_TTL,
        on_failure=Callback(on_check_failure),
        status=JobStatus.FAILED,
    )
    reason = f"CheckFailed: {outcome.result.error_kind}: {outcome.result.message} (after {outcome.attempt} tries)"
    FailedJobRegistry(queue=get_queue(CHECKS_QUEUE)).add(job, ttl=DEAD_LETTER_TTL, exc_string=reason)
    announce_failure(outcome, key=job.id)
