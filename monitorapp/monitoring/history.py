"""Check history that stays small: daily rollups, then pruning.

Once a day `maintain_check_history` (registered with rq-scheduler under a
stable id) rolls every endpoint's raw checks up into one `CheckRollup` per
UTC day, then deletes raw checks older than `CHECK_RETENTION_DAYS` and
rollups older than `ROLLUP_RETENTION_DAYS`. Rolling up comes first, so a day
is never pruned before it is summarised.

Each step works in small pieces, each in its own short transaction: rollups
a few hundred endpoints at a time, deletes a few thousand rows at a time, so
the tables are never locked for long and the web keeps answering.

Rollup figures for one endpoint and day:
- `checks`, `failures`: counted from the raw checks of that day.
- `downtime_seconds`: each failed check counts as down from its time until
  the endpoint's next check that day, or midnight if none followed.
- `avg_latency_ms`, `p95_latency_ms`: over the successful checks (a timeout
  would otherwise count as a 10 s answer); p95 by nearest rank.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from monitorapp.extensions import db
from monitorapp.logging import PERFORMANCE, log_event
from monitorapp.models import CheckResult, CheckRollup, Endpoint, utcnow
from monitorapp.queues import DEFAULT_QUEUE
from monitorapp.tenancy import system_scope

HISTORY_JOB_ID = "monitorapp-check-history"
HISTORY_CRON = "17 0 * * *"  # daily at 00:17 UTC, once the day before is complete
ENDPOINT_CHUNK = 500
DELETE_CHUNK = 5000


def maintain_check_history() -> dict[str, int]:
    """The daily job: roll up finished days, then prune what is past retention."""
    with system_scope():
        rolled = rollup_pending_days()
        pruned = prune_check_results()
        pruned_rollups = prune_rollups()
    counts = {"rollups": rolled, "checks_pruned": pruned, "rollups_pruned": pruned_rollups}
    log_event(PERFORMANCE, "check history maintained", **counts)
    return counts


def register_history_job(scheduler) -> None:
    """Register the daily job under its stable id, replacing any earlier registration."""
    scheduler.cancel(HISTORY_JOB_ID)
    scheduler.cron(
        HISTORY_CRON,
        func=maintain_check_history,
        id=HISTORY_JOB_ID,
        queue_name=DEFAULT_QUEUE,
        result_ttl=3 * 24 * 3600,
        timeout=6 * 3600,
    )


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup_pending_days(today: date | None = None) -> int:
    """Roll up every finished day not yet (completely) rolled up; return the rows written.

    The newest rolled-up day is computed again, in case a run stopped halfway.
    """
    today = today or utcnow().date()
    newest = db.session.execute(select(func.max(CheckRollup.day)).execution_options(system_scope=True)).scalar()
    if newest is None:
        oldest = db.session.execute(
            select(func.min(CheckResult.checked_at)).execution_options(system_scope=True)
        ).scalar()
        if oldest is None:
            return 0
        newest = oldest.date()
    start = max(newest, today - timedelta(days=current_app.config["CHECK_RETENTION_DAYS"]))
    written = 0
    day = start
    while day < today:
        written += rollup_day(day)
        day += timedelta(days=1)
    return written


def rollup_day(day: date) -> int:
    """Write (or rewrite) the rollups of one UTC day; return how many."""
    written = 0
    after: uuid.UUID | None = None
    while True:
        query = select(Endpoint.id).order_by(Endpoint.id).limit(ENDPOINT_CHUNK).execution_options(system_scope=True)
        if after is not None:
            query = query.where(Endpoint.id > after)
        endpoint_ids = list(db.session.execute(query).scalars())
        if not endpoint_ids:
            return written
        rows = _rollup_rows(day, endpoint_ids)
        if rows:
            db.session.execute(_upsert(rows))
        db.session.commit()
        written += len(rows)
        after = endpoint_ids[-1]


def _rollup_rows(day: date, endpoint_ids: list[uuid.UUID]) -> list[dict]:
    start, end = day_bounds(day)
    checks = db.session.execute(
        select(
            CheckResult.endpoint_id,
            CheckResult.tenant_id,
            CheckResult.checked_at,
            CheckResult.ok,
            CheckResult.latency_ms,
        )
        .where(
            CheckResult.endpoint_id.in_(endpoint_ids),
            CheckResult.checked_at >= start,
            CheckResult.checked_at < end,
        )
        .order_by(CheckResult.endpoint_id, CheckResult.checked_at)
        .execution_options(system_scope=True)
    ).all()
    by_endpoint: dict[uuid.UUID, list] = defaultdict(list)
    for check in checks:
        by_endpoint[check.endpoint_id].append(check)
    return [summarise(day, endpoint_checks) for endpoint_checks in by_endpoint.values()]


def summarise(day: date, checks: list) -> dict:
    """One rollup row from one endpoint's checks of `day`, oldest first."""
    _, end = day_bounds(day)
    downtime = 0.0
    for index, check in enumerate(checks):
        if not check.ok:
            until = checks[index + 1].checked_at if index + 1 < len(checks) else end
            downtime += (until - check.checked_at).total_seconds()
    latencies = sorted(check.latency_ms for check in checks if check.ok and check.latency_ms is not None)
    return {
        "endpoint_id": checks[0].endpoint_id,
        "tenant_id": checks[0].tenant_id,
        "day": day,
        "checks": len(checks),
        "failures": sum(1 for check in checks if not check.ok),
        "downtime_seconds": round(downtime),
        "avg_latency_ms": sum(latencies) / len(latencies) if latencies else None,
        "p95_latency_ms": float(latencies[math.ceil(0.95 * len(latencies)) - 1]) if latencies else None,
    }


def _upsert(rows: list[dict]):
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(CheckRollup).values(rows)
    updated = ("tenant_id", "checks", "failures", "downtime_seconds", "avg_latency_ms", "p95_latency_ms")
    return statement.on_conflict_do_update(
        index_elements=["endpoint_id", "day"],
        set_={name: statement.excluded[name] for name in updated},
    ).execution_options(system_scope=True)


def prune_check_results(now: datetime | None = None) -> int:
    """Delete raw checks past `CHECK_RETENTION_DAYS`, a few thousand per transaction."""
    cutoff = datetime.combine(
        (now or utcnow()).date() - timedelta(days=current_app.config["CHECK_RETENTION_DAYS"]), time.min, tzinfo=UTC
    )
    deleted = 0
    while True:
        oldest = (
            select(CheckResult.id)
            .where(CheckResult.checked_at < cutoff)
            .order_by(CheckResult.id)
            .limit(DELETE_CHUNK)
            .scalar_subquery()
        )
        count = db.session.execute(
            delete(CheckResult).where(CheckResult.id.in_(oldest)).execution_options(system_scope=True)
        ).rowcount
        db.session.commit()
        deleted += count
        if count < DELETE_CHUNK:
            return deleted


def prune_rollups(today: date | None = None) -> int:
    """Delete rollups past `ROLLUP_RETENTION_DAYS` (one day's worth a day, so one statement)."""
    cutoff = (today or utcnow().date()) - timedelta(days=current_app.config["ROLLUP_RETENTION_DAYS"])
    count = db.session.execute(
        delete(CheckRollup).where(CheckRollup.day < cutoff).execution_options(system_scope=True)
    ).rowcount
    db.session.commit()
    return count
