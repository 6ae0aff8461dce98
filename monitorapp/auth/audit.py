"""The audit log: who did what, in which team, from where.

`record()` adds an `AuditEvent` row to the caller's transaction (the caller
commits it with the change it describes) and writes a `monitors.audit` line.
Events that belong to no team — a failed login for an unknown address — go
to the log only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from monitorapp.extensions import db
from monitorapp.logging import AUDIT, log_event
from monitorapp.models import AuditEvent
from monitorapp.tenancy import current_tenant_id


def _request_actor_id() -> uuid.UUID | None:
    if not has_request_context():
        return None
    from flask import g

    token = g.get("api_token")
    if token is not None:
        return token.user_id
    if current_user and current_user.is_authenticated:
        return current_user.id
    return None


def _client() -> tuple[str | None, str | None]:
    if not has_request_context():
        return None, None
    user_agent = (request.user_agent.string or "")[:255] or None
    return request.remote_addr, user_agent


def record(
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    actor_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
) -> AuditEvent | None:
    """Record `action` in the current team's audit log (not committed).

    The actor, IP and user agent come from the request when there is one;
    `actor_id` and `tenant_id` override them (sign-up, login, invitations act
    before the session knows the user or the team). Returns the row, or None
    when there is no team to file it under (the log line is still written).
    """
    actor_id = actor_id or _request_actor_id()
    tenant_id = tenant_id or current_tenant_id()
    ip, user_agent = _client()
    # Stored as JSON: ids, times and the like become their text.
    detail = json.loads(json.dumps(detail or {}, default=str))
    log_event(
        AUDIT,
        action,
        action=action,
        target=target,
        actor_id=str(actor_id) if actor_id else None,
        tenant_id=str(tenant_id) if tenant_id else None,
        ip=ip,
        **{f"detail_{key}": value for key, value in detail.items()},
    )
    if tenant_id is None:
        return None
    event = AuditEvent(
        tenant_id=tenant_id,
        actor_id=actor_id,
        action=action,
        target=(target or "")[:255] or None,
        ip=ip,
        user_agent=user_agent,
        detail=detail,
    )
    db.session.add(event)
    return event


def page_of_events(page: int, size: int) -> tuple[list[AuditEvent], int]:
    """One page of the current team's events, newest first, and how many there are."""
    total = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    query = (
        select(AuditEvent)
        .options(selectinload(AuditEvent.actor))  # one query for the page's actors, not one per row
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    return list(db.session.execute(query).scalars()), total
