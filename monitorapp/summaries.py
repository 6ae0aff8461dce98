"""A team's dashboard summaries, cached in Redis for a few seconds.

What the dashboard and the API list need on every request and that does
not change with every request: the endpoints counted by status, the page
anchors, and the banner's open incidents.

The dashboard's "Showing 1–25 of N", the API's `count` and the status
banner all need the team's endpoints counted by status. At 100,000
endpoints that count reads 100,000 index entries (10–35 ms of PostgreSQL
on every page, bench/web.py), so it is read once and kept in Redis for
`TTL_SECONDS`.

A page deep in the listing skipped every row before it (OFFSET): page 2,000
of 4,000 read 50,000 index entries, and an API client reading every page
read n²/2. The sort key of every `ANCHOR_EVERY`-th endpoint (newest first)
is kept the same way, so a page starts from the nearest anchor and skips
fewer than `ANCHOR_EVERY` rows.

Every change that moves a summary forgets all of its team's at once: a
session that flushed an endpoint created, deleted, renamed, paused, resumed
or given a new status, or an incident opened, changed or resolved, forgets
its teams' summaries after the commit (the hooks below); the check
recorder, which writes statuses in one batched UPDATE, forgets the teams
whose endpoints changed status (`forget`). The TTL only bounds a change
that slipped past both (a Redis outage at the wrong moment).

A cached value carries the generation of its team's counter, and every
`forget` bumps that counter, so a value computed before a change and
stored after it is never read back: a page load costs one `MGET`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain
from typing import Any

import redis
from flask import has_app_context, has_request_context, request
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session

from monitorapp.extensions import db
from monitorapp.models import Endpoint, Incident
from monitorapp.queues import get_redis
from monitorapp.tenancy import current_tenant_id, in_system_scope

TTL_SECONDS = 10
ANCHOR_TTL_SECONDS = 60  # positions move only when endpoints are added or deleted
ANCHOR_EVERY = 1000
GENERATION_TTL_SECONDS = 24 * 3600  # far longer than a value lives
_CHANGED = "monitorapp_changed_teams"
_MEMO = "monitorapp.team_summaries"
NAMES = ("counts", "anchors", "open-incidents")
_SHOWN = ("status", "paused", "name")  # what of an endpoint the summaries show or count
log = logging.getLogger(__name__)

StatusCounts = dict[tuple[bool, str], int]
Anchor = tuple[int, datetime, uuid.UUID]  # position (0-based, newest first), created_at, id


def _key(tenant_id: uuid.UUID, name: str) -> str:
    return f"monitorapp:team-summary:{tenant_id}:{name}"


def cached(name: str, compute: Callable[[], Any], ttl: int = TTL_SECONDS) -> Any:
    """`compute()` for the current team, from Redis while nothing changed (JSON-able values).

    `name` is one of `NAMES`: the first summary a request asks for fetches
    them all in one round trip.
    """
    if name not in NAMES:
        raise ValueError(f"unknown summary {name!r}: add it to NAMES")
    tenant_id = current_tenant_id()
    if tenant_id is None or in_system_scope():
        return compute()
    try:
        generation, stored = _fetched(tenant_id)
    except (redis.RedisError, OSError):
        return compute()
    if stored.get(name) is not None:
        stored_generation, _, payload = stored[name].decode().partition("|")
        if stored_generation == generation:
            return json.loads(payload)
    value = compute()
    entry = f"{generation}|{json.dumps(value)}".encode()
    stored[name] = entry
    with contextlib.suppress(redis.RedisError, OSError):
        get_redis().set(_key(tenant_id, name), entry, ex=ttl)
    return value


def _fetched(tenant_id: uuid.UUID) -> tuple[str, dict[str, bytes | None]]:
    """The team's generation and stored summaries, read once per request."""
    memo = _memo()
    if memo.get("tenant_id") != tenant_id:
        values = get_redis().mget(_key(tenant_id, "generation"), *(_key(tenant_id, name) for name in NAMES))
        memo.clear()
        memo.update(
            tenant_id=tenant_id,
            generation=(values[0] or b"0").decode(),
            stored=dict(zip(NAMES, values[1:], strict=True)),
        )
    return memo["generation"], memo["stored"]


def _memo() -> dict:
    """This request's copy of the summaries (outside a request: none kept)."""
    if not has_request_context():
        return {}
    return request.environ.setdefault(_MEMO, {})


def status_counts() -> StatusCounts:
    """The current team's endpoints counted by `(paused, status)`."""
    rows = cached("counts", _count)
    return {(paused, status): count for paused, status, count in rows}


def _count() -> list:
    rows = db.session.execute(
        select(Endpoint.paused, Endpoint.status, func.count()).group_by(Endpoint.paused, Endpoint.status)
    )
    return [[bool(paused), status, count] for paused, status, count in rows]


def total(status: str | None = None) -> int:
    """How many endpoints the current team has (with this status, if given)."""
    return sum(count for (_, value), count in status_counts().items() if status is None or value == status)


def page_anchor(offset: int) -> Anchor | None:
    """The nearest anchor at or before `offset` in the unfiltered newest-first listing."""
    number = offset // ANCHOR_EVERY
    if number == 0:
        return None
    anchors = cached("anchors", _anchors, ttl=ANCHOR_TTL_SECONDS)
    if number >= len(anchors):
        return None
    created_at, endpoint_id = anchors[number]
    return number * ANCHOR_EVERY, datetime.fromisoformat(created_at), uuid.UUID(endpoint_id)


def _anchors() -> list:
    """The sort key of every ANCHOR_EVERY-th endpoint, newest first: one pass over the index."""
    position = func.row_number().over(order_by=(Endpoint.created_at.desc(), Endpoint.id.desc()))
    numbered = select(Endpoint.created_at, Endpoint.id, position.label("position")).subquery()
    rows = db.session.execute(
        select(numbered.c.created_at, numbered.c.id)
        .where((numbered.c.position - 1) % ANCHOR_EVERY == 0)
        .order_by(numbered.c.position)
    )
    return [[created_at.isoformat(), str(endpoint_id)] for created_at, endpoint_id in rows]


def forget(tenant_ids: Iterable[uuid.UUID]) -> None:
    """Drop these teams' summaries (after a commit that changed them)."""
    tenant_ids = {tenant_id for tenant_id in tenant_ids if tenant_id is not None}
    if not tenant_ids or not has_app_context():
        return
    _memo().clear()
    try:
        pipeline = get_redis().pipeline(transaction=False)
        for tenant_id in tenant_ids:
            generation_key = _key(tenant_id, "generation")
            pipeline.incr(generation_key)
            pipeline.expire(generation_key, GENERATION_TTL_SECONDS)
        pipeline.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "could not forget team summaries (stale for up to %s s): %s", ANCHOR_TTL_SECONDS, type(exc).__name__
        )


# -- the session hooks that forget after a commit ---------------------------------------


@event.listens_for(Session, "after_flush")
def _note_changed_teams(session: Session, flush_context) -> None:
    changed = session.info.setdefault(_CHANGED, set())
    for obj in chain(session.new, session.deleted):
        if isinstance(obj, Endpoint | Incident):
            changed.add(obj.tenant_id)
    for obj in session.dirty:
        if isinstance(obj, Incident):
            changed.add(obj.tenant_id)
        elif isinstance(obj, Endpoint):
            attributes = inspect(obj).attrs
            if any(getattr(attributes, name).history.has_changes() for name in _SHOWN):
                changed.add(obj.tenant_id)


@event.listens_for(Session, "after_commit")
def _forget_changed_teams(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    if changed:
        forget(changed)


@event.listens_for(Session, "after_rollback")
def _drop_changed_teams(session: Session) -> None:
    session.info.pop(_CHANGED, None)
