"""What each event says: title and body, the same words on every channel."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from monitorapp.logging import redact_url
from monitorapp.models import Endpoint, Incident, utcnow
from monitorapp.notify.base import Notification


def format_duration(span: timedelta) -> str:
    """`2 d 3 h`, `1 h 5 min`, `4 min`, `30 s`: the two largest units."""
    seconds = max(0, int(span.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def endpoint_link(endpoint_id) -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}/endpoints/{endpoint_id}"


def _base(endpoint: Endpoint) -> dict:
    return {
        "endpoint_name": endpoint.name,
        # A monitored URL can carry a token in its query string; notifications get it redacted.
        "endpoint_url": redact_url(endpoint.url),
        "link": endpoint_link(endpoint.id),
    }


def incident_opened(incident: Incident, endpoint: Endpoint) -> Notification:
    error = incident.first_error or "the check failed"
    return Notification(
        event="opened",
        title=f"DOWN: {endpoint.name}",
        body=(
            f"{endpoint.name} ({redact_url(endpoint.url)}) is down since {_when(incident.started_at)}.\n"
            f"Error: {error}\n"
            f"Failed checks: {incident.failed_checks}\n"
            f"{endpoint_link(endpoint.id)}"
        ),
        error=incident.first_error,
        since=incident.started_at.isoformat(),
        **_base(endpoint),
    )


def incident_resolved(incident: Incident, endpoint: Endpoint) -> Notification:
    duration = incident.duration
    return Notification(
        event="resolved",
        title=f"UP: {endpoint.name}",
        body=(
            f"{endpoint.name} ({redact_url(endpoint.url)}) is up again after {format_duration(duration)} down "
            f"(since {_when(incident.started_at)}).\n"
            f"{endpoint_link(endpoint.id)}"
        ),
        error=incident.first_error,
        since=incident.started_at.isoformat(),
        duration_seconds=int(duration.total_seconds()),
        **_base(endpoint),
    )


def incident_reminder(incident: Incident, endpoint: Endpoint) -> Notification:
    duration = utcnow() - incident.started_at
    return Notification(
        event="reminder",
        title=f"Still DOWN: {endpoint.name}",
        body=(
            f"{endpoint.name} ({redact_url(endpoint.url)}) has been down for {format_duration(duration)} "
            f"(since {_when(incident.started_at)}) and nobody has acknowledged it.\n"
            f"Error: {incident.first_error or 'the check failed'}\n"
            f"{endpoint_link(endpoint.id)}"
        ),
        error=incident.first_error,
        since=incident.started_at.isoformat(),
        duration_seconds=int(duration.total_seconds()),
        **_base(endpoint),
    )


def check_failed(endpoint: Endpoint, error: str | None, attempts: int) -> Notification:
    return Notification(
        event="check_failed",
        title=f"Check failed: {endpoint.name}",
        body=(
            f"The check of {endpoint.name} ({redact_url(endpoint.url)}) failed after {attempts} attempts: "
            f"{error or 'no answer'}.\n"
            f"{endpoint_link(endpoint.id)}"
        ),
        error=error,
        **_base(endpoint),
    )


def channel_test(channel_name: str) -> Notification:
    return Notification(
        event="test",
        title="monitorapp test notification",
        body=f"This is a test of the channel “{channel_name}”. If you can read it, alerts will reach you here.",
    )
