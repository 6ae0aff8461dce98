"""Incidents: when an endpoint counts as down, and when as up again.

An endpoint turns down after `failure_threshold` failed checks in a row and up
again after `recovery_threshold` successes in a row, so a single blip below the
threshold never pages anyone and a flapping endpoint does not open an incident
per wobble. The check engine calls `apply_check_result` inside the transaction
that records the check, with the endpoint row locked (`SELECT … FOR UPDATE`),
so two workers can never both open an incident; the partial unique index on
open incidents is the last line of defence. The returned events go to
`monitorapp.notify.enqueue_notifications` after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import CheckResult, Endpoint, EndpointStatus, Incident

OPENED = "opened"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Event:
    """An incident opened or resolved, to be notified once per channel."""

    kind: str
    incident_id: uuid.UUID
    endpoint_id: uuid.UUID
    tenant_id: uuid.UUID
    at: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.incident_id}"


class OpenIncidents:
    """The open incidents of a batch of endpoints, loaded in one query.

    The check recorder handles a few hundred checks per transaction; asking
    for each endpoint's open incident separately cost one query per check
    (the check-throughput benchmark, bench/throughput.py).
    """

    def __init__(self, endpoint_ids: list[uuid.UUID]) -> None:
        rows = db.session.scalars(
            select(Incident)
            .where(Incident.endpoint_id.in_(endpoint_ids), Incident.resolved_at.is_(None))
            .execution_options(system_scope=True)
        )
        self._open = {incident.endpoint_id: incident for incident in rows}

    def get(self, endpoint_id: uuid.UUID) -> Incident | None:
        return self._open.get(endpoint_id)

    def opened(self, incident: Incident) -> None:
        self._open[incident.endpoint_id] = incident

    def resolved(self, incident: Incident) -> None:
        self._open.pop(incident.endpoint_id, None)


class _QueryEachTime:
    """Open incidents looked up one endpoint at a time (a single check)."""

    def get(self, endpoint_id: uuid.UUID) -> Incident | None:
        return open_incident(endpoint_id)

    def opened(self, incident: Incident) -> None:
        pass

    def resolved(self, incident: Incident) -> None:
        pass


def apply_check_result(
    endpoint: Endpoint,
    *,
    ok: bool,
    error: str | None,
    checked_at: datetime,
    incidents: OpenIncidents | None = None,
) -> list[Event]:
    """Count one check towards the endpoint's streaks; open or resolve its incident.

    `endpoint` must be locked by the caller's transaction. Updates the
    endpoint's status and streak counters in the session (not `updated_at`:
    a check is not an edit) and returns the events to notify after commit.
    Pass `incidents` (loaded once for a batch) to save a query per check.
    """
    # Keep the endpoint's `updated_at` as it is when the session flushes these changes.
    endpoint.updated_at = Endpoint.updated_at
    lookup = incidents if incidents is not None else _QueryEachTime()
    if ok:
        return _count_success(endpoint, checked_at, lookup)
    return _count_failure(endpoint, error, checked_at, lookup)


def _count_success(endpoint: Endpoint, checked_at: datetime, incidents) -> list[Event]:
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    endpoint.consecutive_successes = (endpoint.consecutive_successes or 0) + 1
    if endpoint.status == EndpointStatus.UP.value:
        return []
    if endpoint.status == EndpointStatus.DOWN.value:
        if endpoint.consecutive_successes < endpoint.recovery_threshold:
            return []
        incident = incidents.get(endpoint.id)
    else:
        # Pending or paused: a resume or a new URL reset the status, maybe mid-incident.
        incident = incidents.get(endpoint.id)
        if incident is not None and endpoint.consecutive_successes < endpoint.recovery_threshold:
            return []
    endpoint.status = EndpointStatus.UP.value
    if incident is None:
        return []
    incident.resolved_at = checked_at
    incidents.resolved(incident)
    return [Event(RESOLVED, incident.id, endpoint.id, endpoint.tenant_id, checked_at)]


def _count_failure(endpoint: Endpoint, error: str | None, checked_at: datetime, incidents) -> list[Event]:
    endpoint.consecutive_successes = 0
    endpoint.consecutive_failures = (endpoint.consecutive_failures or 0) + 1
    if endpoint.failing_since is None:
        endpoint.failing_since = checked_at
    if endpoint.status != EndpointStatus.DOWN.value and endpoint.consecutive_failures < endpoint.failure_threshold:
        return []
    endpoint.status = EndpointStatus.DOWN.value
    incident = incidents.get(endpoint.id)
    if incident is not None:
        # Still the same outage (also across a pause or an edit that reset the status).
        incident.failed_checks += 1
        return []
    incident = Incident(
        id=uuid.uuid4(),
        tenant_id=endpoint.tenant_id,
        endpoint_id=endpoint.id,
        started_at=endpoint.failing_since,
        first_error=_first_error(endpoint) or error,
        failed_checks=endpoint.consecutive_failures,
    )
    db.session.add(incident)
    incidents.opened(incident)
    return [Event(OPENED, incident.id, endpoint.id, endpoint.tenant_id, checked_at)]


def open_incident(endpoint_id: uuid.UUID) -> Incident | None:
    """The endpoint's open incident, if any."""
    return db.session.scalars(
        select(Incident)
        .where(Incident.endpoint_id == endpoint_id, Incident.resolved_at.is_(None))
        .execution_options(system_scope=True)
    ).first()


def _first_error(endpoint: Endpoint) -> str | None:
    """The message of the streak's first failed check (already recorded, unless it is this one)."""
    return db.session.scalars(
        select(CheckResult.message)
        .where(CheckResult.endpoint_id == endpoint.id, CheckResult.checked_at == endpoint.failing_since)
        .limit(1)
        .execution_options(system_scope=True)
    ).first()
