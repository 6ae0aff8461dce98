"""Turning events into deliveries, and deliveries into RQ jobs that send them.

`enqueue_notifications(events)` runs after the check engine's commit: for
every event and every enabled channel of the team that covers the endpoint
it inserts a `NotificationDelivery` — unique on (channel, event key), so a
repeated call adds nothing — commits, then enqueues one
`deliver_notification` job per new delivery on the `notify` queue with
`Retry` on `NOTIFY_RETRY_INTERVALS`.

The job locks its delivery row, sends only if the delivery is still pending,
and records the outcome on the delivery and the channel. A permanent error,
or a transient one on the last retry, marks the delivery failed and the
channel failing (shown on the channels page) until a later send succeeds.

`send_reminders` (every few minutes, registered with rq-scheduler) reminds
about incidents still open and unacknowledged every `reminder_hours` of a
channel, and re-enqueues deliveries whose job never made it to Redis.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask import current_app
from rq import Retry, get_current_job
from sqlalchemy import exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from monitorapp.extensions import db
from monitorapp.logging import AUDIT, log_event
from monitorapp.models import (
    ChannelEndpoint,
    Endpoint,
    Incident,
    NotificationChannel,
    NotificationDelivery,
    utcnow,
)
from monitorapp.monitoring.incidents import OPENED, RESOLVED, Event
from monitorapp.notify import messages
from monitorapp.notify.base import Notification, TransportError, transport_for
from monitorapp.queues import DEFAULT_QUEUE, NOTIFY_QUEUE, get_queue
from monitorapp.tenancy import system_scope

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
REMINDER_JOB_ID = "monitorapp-notification-reminders"
REMINDER_INTERVAL_SECONDS = 300
LOST_AFTER = timedelta(minutes=10)  # a pending delivery never tried this long: its job was lost
FAILED_JOB_TTL = 7 * 24 * 3600


# -- creating deliveries --------------------------------------------------------


def enqueue_notifications(events: Iterable[Event]) -> list[int]:
    """Create the deliveries for incident events and enqueue their jobs (call after commit)."""
    events = list(events)
    if not events:
        return []
    created: list[int] = []
    with system_scope():
        try:
            for event in events:
                incident, endpoint = _incident_and_endpoint(event.incident_id)
                if incident is None:
                    continue
                if event.kind not in (OPENED, RESOLVED):
                    continue
                build = messages.incident_opened if event.kind == OPENED else messages.incident_resolved
                created += create_deliveries(endpoint, event.key, build(incident, endpoint), incident.id)
            db.session.commit()
        except Exception:
            # The check is recorded already; failing its job now would only retry the check.
            db.session.rollback()
            log.exception("notifications for %d incident events could not be created", len(events))
            return []
    enqueue_deliveries(created)
    return created


def notify_check_failed(
    *, endpoint_id: uuid.UUID, error: str | None, attempts: int, key: str
) -> list[int]:
    """Notify that a check's retries are exhausted (RQ's dead letter); `key` makes it once-only."""
    with system_scope():
        endpoint = db.session.scalars(select(Endpoint).where(Endpoint.id == endpoint_id)).first()
        if endpoint is None:
            return []
        created = create_deliveries(
            endpoint, f"check_failed:{key}", messages.check_failed(endpoint, error, attempts), None
        )
        db.session.commit()
    enqueue_deliveries(created)
    return created


def covering_channels(endpoint: Endpoint) -> list[NotificationChannel]:
    """The team's enabled channels that cover `endpoint`."""
    chosen = exists().where(
        ChannelEndpoint.channel_id == NotificationChannel.id, ChannelEndpoint.endpoint_id == endpoint.id
    )
    return list(
        db.session.scalars(
            select(NotificationChannel)
            .where(
                NotificationChannel.tenant_id == endpoint.tenant_id,
                NotificationChannel.enabled,
                or_(NotificationChannel.all_endpoints, chosen),
            )
            .order_by(NotificationChannel.created_at)
            .execution_options(system_scope=True)
        )
    )


def create_deliveries(
    endpoint: Endpoint,
    event_key: str,
    notification: Notification,
    incident_id: uuid.UUID | None,
    channels: list[NotificationChannel] | None = None,
) -> list[int]:
    """Insert one delivery per covering channel, skipping ones that exist; return the new ids."""
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    created = []
    for channel in covering_channels(endpoint) if channels is None else channels:
        statement = (
            insert(NotificationDelivery)
            .values(
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                event_key=event_key,
                incident_id=incident_id,
                payload=notification.as_dict(),
                status=PENDING,
                attempts=0,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["channel_id", "event_key"])
            .returning(NotificationDelivery.id)
        )
        delivery_id = db.session.execute(statement).scalar()
        if delivery_id is not None:
            created.append(delivery_id)
    return created


def enqueue_deliveries(delivery_ids: Iterable[int]) -> None:
    """One job per delivery; if Redis is down, `send_reminders` picks them up later."""
    intervals = list(current_app.config["NOTIFY_RETRY_INTERVALS"])
    try:
        queue = get_queue(NOTIFY_QUEUE)
        for delivery_id in delivery_ids:
            queue.enqueue(
                deliver_notification,
                delivery_id,
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                result_ttl=0,
                failure_ttl=FAILED_JOB_TTL,
            )
    except Exception as exc:
        log.warning("notifications not enqueued, the reminder job will retry them: %s", type(exc).__name__)


def _incident_and_endpoint(incident_id: uuid.UUID) -> tuple[Incident | None, Endpoint | None]:
    row = db.session.execute(
        select(Incident, Endpoint)
        .join(Endpoint, Endpoint.id == Incident.endpoint_id)
        .where(Incident.id == incident_id)
        .execution_options(system_scope=True)
    ).first()
    return (row[0], row[1]) if row else (None, None)


# -- sending ----------------------------------------------------------------------


def deliver_notification(delivery_id: int) -> str:
    """Send one delivery unless it was already sent; raise on a transient error so RQ retries."""
    job = get_current_job()
    last_try = job is None or not job.retries_left
    with system_scope():
        # The row lock makes a repeated or concurrent job wait, then find the delivery sent.
        delivery = db.session.scalars(
            select(NotificationDelivery).where(NotificationDelivery.id == delivery_id).with_for_update()
        ).first()
        if delivery is None or delivery.status != PENDING:
            db.session.rollback()
            return "done"
        channel = db.session.scalars(
            select(NotificationChannel).where(NotificationChannel.id == delivery.channel_id)
        ).one()
        if not channel.enabled:
            delivery.status = SKIPPED
            db.session.commit()
            return SKIPPED
        delivery.attempts += 1
        try:
            transport_for(channel.kind).notify(channel, Notification.from_dict(delivery.payload))
        except Exception as exc:
            # A library's own exception is a transient failure too; its text may hold the target.
            error = exc if isinstance(exc, TransportError) else TransportError(f"unexpected {type(exc).__name__}")
            record_failure(channel, error.message, final=error.permanent or last_try, delivery=delivery)
            db.session.commit()
            if error.permanent:
                return FAILED
            raise error from None
        record_success(channel, delivery)
        db.session.commit()
    return SENT


def record_success(channel: NotificationChannel, delivery: NotificationDelivery | None = None) -> None:
    now = utcnow()
    channel.last_success_at = now
    channel.failing = False
    if delivery is not None:
        delivery.status = SENT
        delivery.sent_at = now
        delivery.last_error = None


def record_failure(
    channel: NotificationChannel, message: str, *, final: bool, delivery: NotificationDelivery | None = None
) -> None:
    """Note the error on the channel; a final one marks the channel failing."""
    channel.last_error = message[:255]
    channel.last_error_at = utcnow()
    if delivery is not None:
        delivery.last_error = message[:255]
    if final:
        channel.failing = True
        if delivery is not None:
            delivery.status = FAILED
    log_event(
        AUDIT,
        "notification not sent",
        level=logging.WARNING,
        channel=str(channel.id),
        team=str(channel.tenant_id),
        kind=channel.kind,
        error=message,
        final=final,
    )


def send_test(channel: NotificationChannel) -> str | None:
    """Send a test through `channel` now; return the error, or None when it went out."""
    try:
        transport_for(channel.kind).notify(channel, messages.channel_test(channel.name))
    except TransportError as exc:
        record_failure(channel, exc.message, final=exc.permanent)
        return exc.message
    record_success(channel)
    return None


# -- reminders ---------------------------------------------------------------------


def send_reminders(now: datetime | None = None) -> int:
    """Remind about open, unacknowledged incidents; re-enqueue lost deliveries. Return new ones."""
    now = now or utcnow()
    created: list[int] = []
    with system_scope():
        try:
            rows = db.session.execute(
                select(Incident, Endpoint)
                .join(Endpoint, Endpoint.id == Incident.endpoint_id)
                .where(Incident.resolved_at.is_(None), Incident.acknowledged_at.is_(None))
            ).all()
            for incident, endpoint in rows:
                created += _remind(incident, endpoint, now)
            lost = list(
                db.session.scalars(
                    select(NotificationDelivery.id).where(
                        NotificationDelivery.status == PENDING,
                        NotificationDelivery.attempts == 0,
                        NotificationDelivery.created_at < now - LOST_AFTER,
                    )
                )
            )
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    enqueue_deliveries(created + lost)
    return len(created)


def _remind(incident: Incident, endpoint: Endpoint, now: datetime) -> list[int]:
    created = []
    down_for = now - incident.started_at
    for channel in covering_channels(endpoint):
        if channel.reminder_hours <= 0:
            continue
        # The n-th reminder is due n × reminder_hours after the start: its number is its key.
        number = int(down_for / timedelta(hours=channel.reminder_hours))
        if number < 1:
            continue
        key = f"reminder:{incident.id}:{number}"
        notification = messages.incident_reminder(incident, endpoint)
        created += create_deliveries(endpoint, key, notification, incident.id, [channel])
    if created:
        incident.last_reminder_at = now
    return created


def register_reminder_job(scheduler) -> None:
    """Register `send_reminders` under its stable id, replacing any earlier registration."""
    scheduler.cancel(REMINDER_JOB_ID)
    scheduler.schedule(
        scheduled_time=datetime.now(UTC).replace(tzinfo=None),
        func=send_reminders,
        interval=REMINDER_INTERVAL_SECONDS,
        repeat=None,
        id=REMINDER_JOB_ID,
        queue_name=DEFAULT_QUEUE,
        result_ttl=REMINDER_INTERVAL_SECONDS * 10,
        timeout=REMINDER_INTERVAL_SECONDS,
    )
