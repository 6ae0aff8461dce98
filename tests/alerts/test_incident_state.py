"""The down/up state machine: sequences of check results give exactly the expected incidents."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from monitorapp.extensions import db
from monitorapp.models import Endpoint, Incident, utcnow
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import make_endpoint, record


def incidents_of(endpoint_id):
    with system_scope():
        rows = db.session.scalars(
            select(Incident).where(Incident.endpoint_id == endpoint_id).order_by(Incident.started_at)
        ).all()
        db.session.expunge_all()
        return rows


def endpoint_row(endpoint_id):
    with system_scope():
        row = db.session.scalars(select(Endpoint).where(Endpoint.id == endpoint_id)).one()
        db.session.expunge_all()
        return row


def test_a_single_blip_below_the_threshold_opens_no_incident(ctx, team_a):
    endpoint = make_endpoint(team_a.id)  # default: down after 2 failures in a row
    record(endpoint, "+++-+++-++")

    assert incidents_of(endpoint.id) == []
    assert endpoint_row(endpoint.id).status == "up"


def test_a_long_outage_is_one_incident_with_its_start_first_error_and_count(ctx, team_a):
    endpoint = make_endpoint(team_a.id)
    start = utcnow() - timedelta(hours=2)
    record(endpoint, "++" + "-" * 30 + "+", start=start)

    [incident] = incidents_of(endpoint.id)
    assert incident.started_at == start + timedelta(minutes=2)  # the first failed check, not the confirming one
    assert incident.resolved_at == start + timedelta(minutes=32)
    assert incident.failed_checks == 30
    assert incident.first_error == "HTTP 503 Service Unavailable."
    assert incident.duration == timedelta(minutes=30)
    row = endpoint_row(endpoint.id)
    assert (row.status, row.consecutive_failures, row.consecutive_successes) == ("up", 0, 1)


def test_flapping_opens_one_incident_per_confirmed_outage_only(ctx, team_a):
    endpoint = make_endpoint(team_a.id, failure_threshold=2, recovery_threshold=3)
    # down (2 failures), wobbles below the recovery count, recovers, blips once, goes down again.
    record(endpoint, "+--+-++-+++-+--")

    first, second = incidents_of(endpoint.id)
    assert first.resolved_at is not None and first.failed_checks == 4
    assert second.resolved_at is None and second.failed_checks == 2
    assert endpoint_row(endpoint.id).status == "down"


def test_a_threshold_of_one_opens_at_the_first_failure(ctx, team_a):
    endpoint = make_endpoint(team_a.id, failure_threshold=1)
    record(endpoint, "-")

    [incident] = incidents_of(endpoint.id)
    assert incident.resolved_at is None and incident.failed_checks == 1
    assert endpoint_row(endpoint.id).status == "down"


def test_a_new_endpoint_stays_pending_until_its_failures_are_confirmed(ctx, team_a):
    endpoint = make_endpoint(team_a.id, failure_threshold=3)
    record(endpoint, "--")

    assert endpoint_row(endpoint.id).status == "pending"
    assert incidents_of(endpoint.id) == []


def test_the_database_refuses_a_second_open_incident_for_one_endpoint(ctx, team_a):
    endpoint = make_endpoint(team_a.id)
    with system_scope():
        db.session.add(Incident(tenant_id=team_a.id, endpoint_id=endpoint.id, started_at=utcnow()))
        db.session.commit()
        db.session.add(Incident(tenant_id=team_a.id, endpoint_id=endpoint.id, started_at=utcnow()))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


@pytest.mark.postgres
def test_concurrent_recorders_cannot_open_two_incidents(app, team_a):
    """Eight threads record failures for one endpoint at once: one incident, every failure counted."""
    endpoint = make_endpoint(team_a.id, failure_threshold=2)
    errors = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        with app.app_context():
            try:
                barrier.wait()
                record(endpoint, "--", start=utcnow())
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    [incident] = incidents_of(endpoint.id)
    assert incident.failed_checks == 16
    assert endpoint_row(endpoint.id).consecutive_failures == 16


def _set_paused(team_id, endpoint_id, paused: bool) -> None:
    from monitorapp import endpoints
    from monitorapp.tenancy import tenant_scope

    with tenant_scope(team_id):
        endpoints.set_paused(endpoints.get_endpoint(endpoint_id), paused)


def test_pausing_and_resuming_mid_outage_keeps_one_incident_until_it_recovers(ctx, team_a):
    endpoint = make_endpoint(team_a.id)
    record(endpoint, "---", start=utcnow() - timedelta(minutes=30))
    _set_paused(team_a.id, endpoint.id, True)
    _set_paused(team_a.id, endpoint.id, False)
    assert endpoint_row(endpoint.id).status == "pending"

    record(endpoint, "--", start=utcnow() - timedelta(minutes=10))
    [incident] = incidents_of(endpoint.id)
    assert incident.resolved_at is None and incident.failed_checks == 5

    record(endpoint, "+", start=utcnow())
    [incident] = incidents_of(endpoint.id)
    assert incident.resolved_at is not None
    assert endpoint_row(endpoint.id).status == "up"
