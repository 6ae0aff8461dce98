"""Database behaviour the app relies on, on every database it supports."""

from __future__ import annotations

from sqlalchemy import func, select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint
from monitorapp.tenancy import tenant_scope


def test_deleting_an_endpoint_deletes_its_check_results(ctx, alice):
    with tenant_scope(alice.team_id):
        endpoint = Endpoint(name="a", url="https://a.example/")
        db.session.add(endpoint)
        db.session.flush()
        db.session.add(CheckResult(endpoint_id=endpoint.id, ok=True, status_code=200, latency_ms=5))
        db.session.commit()
        db.session.execute(Endpoint.__table__.delete().where(Endpoint.id == endpoint.id))
        db.session.commit()
        assert db.session.execute(select(func.count()).select_from(CheckResult)).scalar() == 0
