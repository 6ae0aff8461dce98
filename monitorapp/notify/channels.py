"""A team's notification channels: validate, create, change, delete.

One validation path for every caller. Works in the current team's scope (the
tenancy filter scopes the queries; new rows are stamped with the team). The
target is encrypted before it is stored and never returned in full again: an
edit that leaves the target field empty keeps the stored one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select

from monitorapp.auth import audit
from monitorapp.extensions import db
from monitorapp.models import ChannelEndpoint, Endpoint, Membership, NotificationChannel
from monitorapp.notify.base import transport_for
from monitorapp.notify.secrets import encrypt, mask

MAX_NAME_LENGTH = 100
MAX_TARGET_LENGTH = 2048
MAX_REMINDER_HOURS = 168


class ChannelError(Exception):
    """Input that cannot make a channel; `errors` maps a field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid channel")
        self.errors = errors


def kinds() -> list[tuple[str, str]]:
    from monitorapp.notify import transports  # noqa: F401  (registers the built-in kinds)
    from monitorapp.notify.base import KINDS

    return [(kind, transport.label) for kind, transport in KINDS.items()]


def list_channels() -> list[NotificationChannel]:
    return list(db.session.scalars(select(NotificationChannel).order_by(NotificationChannel.created_at)))


def get_channel(channel_id: uuid.UUID) -> NotificationChannel | None:
    """The current team's channel with this id, or None (foreign ids included)."""
    return db.session.scalars(select(NotificationChannel).where(NotificationChannel.id == channel_id)).first()


def covered_endpoint_ids(channel: NotificationChannel) -> set[uuid.UUID]:
    return set(db.session.scalars(select(ChannelEndpoint.endpoint_id).where(ChannelEndpoint.channel_id == channel.id)))


def validate(data: Mapping[str, Any], channel: NotificationChannel | None = None) -> dict[str, Any]:
    """Clean the input or raise ChannelError with a message per field."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    name = str(data.get("name") or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        errors["name"] = [f"Enter a name of 1 to {MAX_NAME_LENGTH} characters."]
    cleaned["name"] = name

    kind = channel.kind if channel is not None else str(data.get("kind") or "")
    try:
        transport = transport_for(kind)
    except Exception:
        errors["kind"] = ["Choose a kind of channel."]
        raise ChannelError(errors) from None
    cleaned["kind"] = kind

    if transport.has_target:
        target = str(data.get("target") or "").strip()
        if not target and channel is None:
            errors["target"] = ["Enter the URL to send to."]
        elif len(target) > MAX_TARGET_LENGTH:
            errors["target"] = [f"Enter at most {MAX_TARGET_LENGTH} characters."]
        elif target:
            try:
                cleaned["target"] = transport.validate_target(target)
            except ValueError as exc:
                errors["target"] = [str(exc)]
    else:
        recipients = _recipients(data.get("email_recipients") or ())
        if not recipients:
            errors["email_recipients"] = ["Choose at least one team member to receive the mail."]
        cleaned["email_recipients"] = recipients

    cleaned["all_endpoints"] = _flag(data.get("all_endpoints", True))
    cleaned["endpoint_ids"] = _endpoint_ids(data.get("endpoint_ids") or ())
    if not cleaned["all_endpoints"] and not cleaned["endpoint_ids"]:
        errors["endpoint_ids"] = ["Choose the endpoints this channel covers, or let it cover all of them."]
    try:
        hours = int(str(data.get("reminder_hours") or "0").strip())
    except ValueError:
        hours = -1
    if not 0 <= hours <= MAX_REMINDER_HOURS:
        errors["reminder_hours"] = [f"Enter a whole number of hours from 0 (no reminders) to {MAX_REMINDER_HOURS}."]
    cleaned["reminder_hours"] = hours
    if errors:
        raise ChannelError(errors)
    return cleaned


def create_channel(**data: Any) -> NotificationChannel:
    """Validate and add a channel to the current team (flushed, not committed)."""
    cleaned = validate(data)
    channel = NotificationChannel(id=uuid.uuid4(), kind=cleaned["kind"], enabled=_flag(data.get("enabled", True)))
    db.session.add(channel)
    _apply(channel, cleaned)
    db.session.flush()
    audit.record("channel.created", target=channel.name, detail={"kind": channel.kind})
    return channel


def update_channel(channel: NotificationChannel, data: Mapping[str, Any]) -> NotificationChannel:
    cleaned = validate(data, channel)
    _apply(channel, cleaned)
    db.session.flush()
    audit.record("channel.changed", target=channel.name, detail={"kind": channel.kind})
    return channel


def set_enabled(channel: NotificationChannel, enabled: bool) -> None:
    channel.enabled = enabled
    if enabled:
        channel.failing = False  # a fresh start; the next send tells
    audit.record("channel.enabled" if enabled else "channel.disabled", target=channel.name)


def delete_channel(channel: NotificationChannel) -> None:
    audit.record("channel.deleted", target=channel.name, detail={"kind": channel.kind})
    db.session.delete(channel)


def _apply(channel: NotificationChannel, cleaned: dict[str, Any]) -> None:
    channel.name = cleaned["name"]
    if "target" in cleaned:
        channel.target_encrypted = encrypt(cleaned["target"])
        channel.target_hint = mask(cleaned["target"])
        channel.failing = False
    if "email_recipients" in cleaned:
        channel.email_recipients = cleaned["email_recipients"]
        channel.target_hint = f"{len(cleaned['email_recipients'])} recipient(s)"
    channel.all_endpoints = cleaned["all_endpoints"]
    channel.reminder_hours = cleaned["reminder_hours"]
    db.session.flush()
    db.session.execute(delete(ChannelEndpoint).where(ChannelEndpoint.channel_id == channel.id))
    if not channel.all_endpoints:
        db.session.add_all(
            ChannelEndpoint(channel_id=channel.id, endpoint_id=endpoint_id) for endpoint_id in cleaned["endpoint_ids"]
        )


def _flag(value: Any) -> bool:
    return value not in (False, "0", "false", "off", "no", "", None)


def _ids(values: Iterable[Any]) -> list[uuid.UUID]:
    if isinstance(values, (str, uuid.UUID)):
        values = [values]
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids


def _recipients(values: Iterable[Any]) -> list[str]:
    """Chosen user ids that are members of the current team (others are dropped)."""
    wanted = _ids(values)
    if not wanted:
        return []
    found = db.session.scalars(select(Membership.user_id).where(Membership.user_id.in_(wanted)))
    return sorted(str(user_id) for user_id in found)


def _endpoint_ids(values: Iterable[Any]) -> list[uuid.UUID]:
    """Chosen endpoint ids of the current team (foreign ones are dropped)."""
    wanted = _ids(values)
    if not wanted:
        return []
    return list(db.session.scalars(select(Endpoint.id).where(Endpoint.id.in_(wanted))))
