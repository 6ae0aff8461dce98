"""The endpoint page's uptime windows and 90-day strip, exact against the raw checks they summarise.

`history.uptimes_and_days` reads the daily rollups for the days they cover and
the raw checks after them, in two queries (bench/web.py); the figures must be
the ones a count of the raw checks gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import insert

from monitorapp.alerts import history
from monitorapp.extensions import db
from monitorapp.models import CheckResult, utcnow
from monitorapp.monitoring.history import rollup_pending_days
from monitorapp.tenancy import system_scope, tenant_scope
from tests.alerts.conftest import make_endpoint


def add_checks(endpoint, moments: list[tuple[datetime, bool]]) -> None:
    rows = [
        {"endpoint_id": endpoint.id, "tenant_id": endpoint.tenant_id, "checked_at": moment, "ok": ok,
         "status_code": 200 if ok else 503, "latency_ms": 100, "attempt": 1}
        for moment, ok in moments
    ]
    with system_scope():
        db.session.execute(insert(CheckResult), rows)
        db.session.commit()


def start_of(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw checks only", "rollups then raw checks"])
def test_uptimes_and_the_strip_match_a_count_of_the_checks(ctx, alice, rolled_up):
    endpoint = make_endpoint(alice.team_id, name="shop")
    now = utcnow()
    # Every 97 minutes for 25 days; every seventh check failed.
    checks = [(now - timedelta(minutes=97 * n + 3), n % 7 != 0) for n in range(25 * 24 * 60 // 97)]
    add_checks(endpoint, checks)
    if rolled_up:
        with system_scope():
            assert rollup_pending_days() > 0

    with tenant_scope(alice.team_id):
        uptimes, days = history.uptimes_and_days(endpoint.id, now)

    today = now.date()
    # Rolled-up days count whole (from the start of the window's first day); later checks from the moment.
    raw_from = start_of(today) if rolled_up else None

    def counted(moment: datetime, start: datetime) -> bool:
        if raw_from is not None and moment < raw_from:
            return moment.date() >= start.date()
        return moment >= start

    for uptime, (label, span) in zip(uptimes, history.WINDOWS, strict=True):
        window = [ok for moment, ok in checks if counted(moment, now - span)]
        assert (uptime.label, uptime.checks, uptime.failures) == (label, len(window), window.count(False))
    assert uptimes[0].checks > 0 and uptimes[-1].checks == len(checks)

    assert [day.day for day in days] == [today - timedelta(days=89 - n) for n in range(90)]
    for day in days:
        on_day = [ok for moment, ok in checks if moment.date() == day.day]
        assert (day.checks, day.failures) == (len(on_day), on_day.count(False)), day.day
    assert sum(day.checks for day in days) == len(checks)
