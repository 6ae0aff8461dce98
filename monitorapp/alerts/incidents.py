"""A team's incidents: list, look up, acknowledge; and the dashboard's status banner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from monitorapp import summaries
from monitorapp.auth import audit
from monitorapp.extensions import db
from monitorapp.models import Endpoint, EndpointStatus, Incident, utcnow

STATES = ("open", "resolved")
BANNER_INCIDENTS = 5  # the newest open incidents the banner names


@dataclass(frozen=True)
class IncidentPage:
    items: list[Incident]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def list_incidents(state: str = "", page: int = 1, size: int = 20) -> IncidentPage:
    """The current team's incidents, newest first; one row more than a page says there is a next."""
    query = (
        select(Incident)
        .join(Incident.endpoint)
        .options(contains_eager(Incident.endpoint))
        .order_by(Incident.started_at.desc(), Incident.id)
    )
    if state == "open":
        query = query.where(Incident.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(Incident.resolved_at.is_not(None))
    rows = list(db.session.scalars(query.limit(size + 1).offset((page - 1) * size)).unique())
    return IncidentPage(items=rows[:size], number=page, has_next=len(rows) > size)


def get_incident(incident_id: uuid.UUID) -> Incident | None:
    """The current team's incident with this id, or None (foreign ids included)."""
    return db.session.scalars(select(Incident).where(Incident.id == incident_id)).first()


def acknowledge(incident: Incident, user_id: uuid.UUID) -> bool:
    """Mark an open incident acknowledged (stops reminders); False if there was nothing to do."""
    if incident.resolved_at is not None or incident.acknowledged_at is not None:
        return False
    incident.acknowledged_at = utcnow()
    incident.acknowledged_by_id = user_id
    audit.record("incident.acknowledged", target=str(incident.id), detail={"endpoint": str(incident.endpoint_id)})
    return True


def endpoint_incidents(endpoint_id: uuid.UUID, limit: int = 20) -> list[Incident]:
    return list(
        db.session.scalars(
            select(Incident)
            .where(Incident.endpoint_id == endpoint_id)
            .order_by(Incident.started_at.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class OpenIncident:
    """An open incident as the banner shows it."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    endpoint_name: str
    started_at: datetime
    first_error: str | None
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class Banner:
    """What the dashboard's banner says: open incidents and endpoints by status."""

    open_incidents: list[OpenIncident]
    open_count: int
    counts: dict[str, int]


def status_banner() -> Banner:
    """Counts by status (a paused endpoint counts as paused) and the newest open incidents.

    Both are cached for a few seconds per team and forgotten on every change
    (monitorapp/summaries.py): the banner is on every dashboard page (bench/web.py).
    """
    counts = {value.value: 0 for value in EndpointStatus}
    for (paused, value), count in summaries.status_counts().items():
        key = EndpointStatus.PAUSED.value if paused else value
        counts[key] = counts.get(key, 0) + count
    newest, open_count = summaries.cached("open-incidents", lambda: _open_incidents(BANNER_INCIDENTS))
    open_incidents = [
        OpenIncident(
            id=uuid.UUID(incident_id),
            endpoint_id=uuid.UUID(endpoint_id),
            endpoint_name=endpoint_name,
            started_at=datetime.fromisoformat(started_at),
            first_error=first_error,
            acknowledged_at=datetime.fromisoformat(acknowledged_at) if acknowledged_at else None,
        )
        for incident_id, endpoint_id, endpoint_name, started_at, first_error, acknowledged_at in newest
    ]
    return Banner(open_incidents=open_incidents, open_count=open_count, counts=counts)


def _open_incidents(limit: int) -> tuple[list, int]:
    """The newest `limit` open incidents (as JSON-able lists) and how many are open."""
    rows = db.session.execute(
        select(
            Incident.id,
            Incident.endpoint_id,
            Endpoint.name,
            Incident.started_at,
            Incident.first_error,
            Incident.acknowledged_at,
        )
        .join(Incident.endpoint)
        .where(Incident.resolved_at.is_(None))
        .order_by(Incident.started_at.desc())
        .limit(limit)
    ).all()
    open_count = len(rows)
    if open_count == limit:
        open_count = db.session.scalar(select(func.count(Incident.id)).where(Incident.resolved_at.is_(None)))
    newest = [
        [str(row.id), str(row.endpoint_id), row.name, row.started_at.isoformat(), row.first_error,
         row.acknowledged_at.isoformat() if row.acknowledged_at else None]
        for row in rows
    ]
    return newest, open_count
