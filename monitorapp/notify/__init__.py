"""Notification channels and sending.

A team's channels (`NotificationChannel`) each have a kind; a kind is a
transport class in `transports.py` with one method, `notify(channel,
notification)`, that sends or raises `TransportError(message, permanent=…)`
(permanent: retrying cannot help, the channel is marked failing). `KINDS`
maps a kind to its transport.

Sending (`sending.py`): the check engine turns incident events into one
`NotificationDelivery` row per event and channel — unique on
(channel, event key), so an event is never notified twice — and one RQ job
per delivery on the `notify` queue, retried with backoff.

Adding a kind is a checklist:

1. Write a `Transport` subclass in `transports.py`: `kind`, `label`,
   `has_target`, `validate_target(target)` (raise `ValueError` with a message
   for the form; check user-chosen hosts with `check_outbound_host`) and
   `notify(channel, notification)`; decorate it with `@register`.
2. If its target has a user-chosen host, check it again at send time (the
   webhook and Apprise transports show how).
3. Add the kind's fields, if any beyond "target", to
   `templates/alerts/_channel_fields.html`.
4. Describe it in `the README (Alerts)`, and add a test that sends through a real
   local receiver in `tests/alerts/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitorapp.notify.base import KINDS, Notification, Transport, TransportError, register

if TYPE_CHECKING:
    from monitorapp.models import NotificationChannel


def create_channel(**data: Any) -> NotificationChannel:
    """Add a channel to the current team (see channels.create_channel)."""
    # Imported here: the channels module needs the auth package, which the check
    # engine (an importer of this package) must not pull in.
    from monitorapp.notify.channels import create_channel as create

    return create(**data)


__all__ = ["KINDS", "Notification", "Transport", "TransportError", "create_channel", "register"]
