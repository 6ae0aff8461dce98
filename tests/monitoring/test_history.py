"""Daily rollups and retention, exact on a known history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, CheckRollup, utcnow
from monitorapp.monitoring import history
from monitorapp.monitoring.history import (
    maintain_check_history,
    prune_check_results,
    prune_rollups,
    rollup_pending_days,
)
from monitorapp.queues import DEFAULT_QUEUE, get_queue
from monitorapp.tenancy import system_scope
from tests.monitoring.conftest import make_endpoint, run_worker

DAY = date(2026, 1, 10)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def add_checks(endpoint, checks: list[tuple[datetime, bool, int | None]]) -> None:
    rows = [
        {
            "endpoint_id": endpoint.id,
            "tenant_id": endpoint.tenant_id,
            "checked_at": checked_at,
            "ok": ok,
            "status_code": 200 if ok else None,
            "latency_ms": latency,
            "error_kind": None if ok else "timeout",
            "attempt": 1,
        }
        for checked_at, ok, latency in checks
    ]
    with system_scope():
        db.session.execute(insert(CheckResult), rows)
        db.session.commit()


def rollups() -> dict:
    rows = db.session.execute(select(CheckRollup).execution_options(system_scope=True)).scalars()
    return {(row.endpoint_id, row.day): row for row in rows}


@pytest.fixture
def known_history(ctx, team_a):
    flaky = make_endpoint(team_a, "http://flaky.example/")
    steady = make_endpoint(team_a, "http://steady.example/")
    add_checks(
        flaky,
        [
            (at(DAY - timedelta(days=1), 23, 50), False, None),  # the day before: not counted in DAY
            (at(DAY, 0), True, 100),
            (at(DAY, 6), False, 1000),
            (at(DAY, 6, 30), False, None),
            (at(DAY, 7), True, 300),
            (at(DAY, 12), True, 200),
            (at(DAY, 23), False, None),
            (at(DAY + timedelta(days=1), 0, 10), True, 50),  # the day after
        ],
    )
    add_checks(steady, [(at(DAY, 1, n), True, 10 * (n + 1)) for n in range(20)])
    return flaky, steady


def test_it_rolls_a_day_up_exactly(known_history):
    flaky, steady = known_history
    with system_scope():
        rollup_pending_days(today=DAY + timedelta(days=2))
    rolled = rollups()

    day = rolled[(flaky.id, DAY)]
    assert (day.checks, day.failures) == (6, 3)
    # Down 06:00–06:30, 06:30–07:00 and 23:00–midnight.
    assert day.downtime_seconds == 30 * 60 + 30 * 60 + 60 * 60
    assert day.uptime_percent == pytest.approx(100 * (1 - 7200 / 86400))
    assert day.avg_latency_ms == pytest.approx(200.0)  # successful checks only
    assert day.p95_latency_ms == 300.0
    assert day.tenant_id == flaky.tenant_id

    steady_day = rolled[(steady.id, DAY)]
    assert (steady_day.checks, steady_day.failures, steady_day.downtime_seconds) == (20, 0, 0)
    assert steady_day.uptime_percent == 100.0
    assert steady_day.avg_latency_ms == pytest.approx(105.0)
    assert steady_day.p95_latency_ms == 190.0  # nearest rank: the 19th of 20

    assert rolled[(flaky.id, DAY - timedelta(days=1))].downtime_seconds == 10 * 60
    assert rolled[(flaky.id, DAY + timedelta(days=1))].checks == 1
    assert (steady.id, DAY + timedelta(days=1)) not in rolled


def test_rolling_up_again_rewrites_instead_of_duplicating(known_history):
    flaky, _ = known_history
    with system_scope():
        rollup_pending_days(today=DAY + timedelta(days=1))
        add_checks(flaky, [(at(DAY, 23, 30), True, 400)])  # a late arrival for DAY
        rollup_pending_days(today=DAY + timedelta(days=1))
    day = rollups()[(flaky.id, DAY)]
    assert (day.checks, day.failures, day.downtime_seconds) == (7, 3, 3600 + 30 * 60)
    count = db.session.execute(select(func.count()).select_from(CheckRollup).execution_options(system_scope=True))
    assert count.scalar() == 3  # flaky: DAY-1 and DAY; steady: DAY


def test_it_prunes_raw_checks_past_retention_in_small_batches(ctx, team_a, monkeypatch):
    monkeypatch.setattr(history, "DELETE_CHUNK", 2)
    endpoint = make_endpoint(team_a, "http://a.example/")
    now = utcnow()
    old = [(now - timedelta(days=31, minutes=n), True, 10) for n in range(5)]
    recent = [(now - timedelta(days=29), True, 10), (now, True, 10)]
    add_checks(endpoint, old + recent)

    with system_scope():
        assert prune_check_results(now) == 5
    left = db.session.execute(select(func.count()).select_from(CheckResult).execution_options(system_scope=True))
    assert left.scalar() == 2


def test_it_prunes_rollups_past_a_year(ctx, team_a):
    endpoint = make_endpoint(team_a, "http://a.example/")
    today = utcnow().date()
    with system_scope():
        for age in (366, 364):
            db.session.add(
                CheckRollup(endpoint_id=endpoint.id, tenant_id=endpoint.tenant_id, day=today - timedelta(days=age))
            )
        db.session.commit()
        assert prune_rollups(today) == 1
    assert [day for _, day in rollups()] == [today - timedelta(days=364)]


def test_the_daily_job_runs_on_a_worker_and_rolls_up_yesterday(ctx, team_a):
    endpoint = make_endpoint(team_a, "http://a.example/")
    yesterday = utcnow().date() - timedelta(days=1)
    add_checks(endpoint, [(at(yesterday, 10), True, 20), (at(yesterday, 11), False, None)])

    get_queue(DEFAULT_QUEUE).enqueue(maintain_check_history)
    run_worker()

    day = rollups()[(endpoint.id, yesterday)]
    assert (day.checks, day.failures, day.downtime_seconds) == (2, 1, 13 * 3600)
