"""Endpoints: list, create, change and delete a team's monitored URLs.

The one place the dashboard and the JSON API both call, so a rule (a URL's
normal form, the interval bounds, the uniqueness per team, the audit event,
the first check) holds the same way for both. Every function works on the
current team: the tenancy filter scopes the queries, and new rows are
stamped with the current team.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import false, func, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from monitorapp import summaries
from monitorapp.auth import audit
from monitorapp.extensions import db
from monitorapp.models import Endpoint, EndpointStatus, utcnow
from monitorapp.monitoring.scheduler import Claim, enqueue_after_commit, next_slot, stamp_first_claim
from monitorapp.monitoring.urls import UrlError, normalise_url, validate_url

MIN_INTERVAL = 1
MAX_INTERVAL = 1440
DEFAULT_INTERVAL = 5
MAX_NAME_LENGTH = 200
MAX_SEARCH_LENGTH = 200
WRITABLE_FIELDS = ("name", "url", "interval_minutes", "paused")
STATUSES = tuple(status.value for status in EndpointStatus)
DUPLICATE_URL = "Your team already monitors this URL."
INTERVAL_MESSAGE = f"Enter a whole number of minutes from {MIN_INTERVAL} to {MAX_INTERVAL}."
_NEWEST_FIRST = (Endpoint.created_at.desc(), Endpoint.id.desc())
# What the dashboard's rows and the API's list show of each endpoint.
LISTED_COLUMNS = (
    Endpoint.id,
    Endpoint.name,
    Endpoint.url,
    Endpoint.interval_minutes,
    Endpoint.paused,
    Endpoint.status,
    Endpoint.last_status_code,
    Endpoint.last_latency_ms,
    Endpoint.last_checked_at,
    Endpoint.last_enqueued_at,
    Endpoint.last_error,
    Endpoint.created_at,
    Endpoint.updated_at,
)


class ValidationError(Exception):
    """Field messages for the person who sent the data: `{"field": ["message"]}`."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Page:
    """One page of a team's endpoints, newest first."""

    items: list[Row]  # LISTED_COLUMNS of each endpoint
    number: int  # 1-based
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_index(self) -> int:
        """The 1-based position of the first row shown ("showing 26–50 of 312")."""
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.size + len(self.items)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


# -- reading ----------------------------------------------------------------


def _filtered(query, search: str | None, status: str | None):
    if search and "\x00" in search:
        # PostgreSQL refuses a NUL in any text parameter (a 500), and no name or URL
        # holds one (both refuse control characters): such a search matches nothing.
        return query.where(false())
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Endpoint.name.ilike(pattern, escape="\\"), Endpoint.url.ilike(pattern, escape="\\")))
    if status:
        query = query.where(Endpoint.status == status)
    return query


def count_endpoints(search: str | None = None, status: str | None = None) -> int:
    if not search:
        return summaries.total(status)  # cached for a few seconds, forgotten on every change
    return db.session.execute(_filtered(select(func.count()).select_from(Endpoint), search, status)).scalar_one()


def list_endpoints(
    page: int = 1,
    page_size: int = 25,
    search: str | None = None,
    status: str | None = None,
    clamp: bool = False,
) -> Page:
    """One page of the current team's endpoints, newest first.

    With `clamp`, a page past the end shows the last page instead (the
    dashboard after a delete emptied the page); without it, such a page is
    empty (the API says so with `count` and `previous`).
    """
    if search:
        return _search_page(page, page_size, search, status, clamp)
    total = count_endpoints(status=status)
    if clamp:
        page = min(page, max(1, math.ceil(total / page_size)))
    offset = (page - 1) * page_size
    if offset >= total:
        return Page(items=[], number=page, size=page_size, total=total)
    page_ids = _filtered(select(Endpoint.id), None, status)
    anchor = None if status else summaries.page_anchor(offset)
    from_oldest = anchor is None and offset > total // 2
    if anchor is not None:
        # Start from the nearest cached anchor: fewer than ANCHOR_EVERY rows to skip (summaries.py).
        position, created_at, endpoint_id = anchor
        page_ids = page_ids.where(tuple_(Endpoint.created_at, Endpoint.id) <= tuple_(created_at, endpoint_id))
        order, skip, limit = _NEWEST_FIRST, offset - position, page_size
    elif from_oldest:
        # Pages past the middle are read from the oldest end, so no page skips more
        # than half the rows (the last page at 100,000 endpoints: 26 ms → 2 ms).
        order = (Endpoint.created_at.asc(), Endpoint.id.asc())
        skip, limit = max(0, total - offset - page_size), min(page_size, total - offset)
    else:
        order, skip, limit = _NEWEST_FIRST, offset, page_size
    # A deferred join: the page's ids come from the index alone (an index-only scan
    # over `ix_endpoint_tenant_created`), then only those rows are read. OFFSET over
    # whole rows read every skipped row from the table: 63 ms → 5 ms at offset
    # 20,000 (bench/web.py). Plain rows of the listed columns, not ORM objects:
    # a third of the hydration cost for an API page of 100.
    page_ids = page_ids.order_by(*order).offset(skip).limit(limit).subquery()
    query = select(*LISTED_COLUMNS).join(page_ids, Endpoint.id == page_ids.c.id).order_by(*order)
    items = db.session.execute(query).all()
    if from_oldest:
        items.reverse()
    return Page(items=items, number=page, size=page_size, total=total)


_LARGEST_OFFSET = 2**53


def _search_page(page: int, page_size: int, search: str, status: str | None, clamp: bool) -> Page:
    """A search's page and its number of matches in one pass (a window count).

    Counting first ran the trigram search twice, once for the count and once
    for the page (bench/web.py); only a page past the end counts on its own.
    """
    offset = (page - 1) * page_size
    # An offset past any real team (and past PostgreSQL's bigint, found by the fuzzer) is just "past the end".
    items, total = _matches(search, status, offset, page_size) if offset < _LARGEST_OFFSET else ([], None)
    if total is None:
        # An empty first page: nothing matches, and no second search is needed to say so.
        total = count_endpoints(search, status) if offset else 0
        last = max(1, math.ceil(total / page_size))
        if clamp and page > last:
            page = last
            items, _ = _matches(search, status, (page - 1) * page_size, page_size)
    return Page(items=items, number=page, size=page_size, total=total)


def _matches(search: str, status: str | None, offset: int, limit: int) -> tuple[list[Row], int | None]:
    """One page of a search (newest first) and how many endpoints match; None if the page is empty."""
    # The matches first, then their order: the window count needs every match anyway,
    # and left to itself PostgreSQL sometimes misjudged a search's trigrams as common
    # and walked the whole team newest first instead of asking the trigram indexes
    # ("svc-91914" at 100,000 endpoints: 144 ms → 1.6 ms, bench/web.py).
    matching = (
        _filtered(select(Endpoint.id, Endpoint.created_at), search, status)
        .cte("matching")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    matches = func.count().over().label("matches")
    page_ids = (
        select(matching.c.id, matches)
        .order_by(matching.c.created_at.desc(), matching.c.id.desc())
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    query = select(*LISTED_COLUMNS, page_ids.c.matches).join(page_ids, Endpoint.id == page_ids.c.id)
    rows = db.session.execute(query.order_by(*_NEWEST_FIRST)).all()
    return rows, (rows[0].matches if rows else None)


def get_endpoint(endpoint_id: uuid.UUID | str) -> Endpoint | None:
    """The current team's endpoint with this id, or None (foreign ids included)."""
    try:
        key = endpoint_id if isinstance(endpoint_id, uuid.UUID) else uuid.UUID(str(endpoint_id))
    except ValueError:
        return None
    return db.session.execute(select(Endpoint).where(Endpoint.id == key)).scalar_one_or_none()


def page_of(endpoint: Endpoint, page_size: int) -> int:
    """The page on which `endpoint` appears in the unfiltered newest-first listing."""
    newer = (
        select(func.count())
        .select_from(Endpoint)
        .where(
            or_(
                Endpoint.created_at > endpoint.created_at,
                (Endpoint.created_at == endpoint.created_at) & (Endpoint.id > endpoint.id),
            )
        )
    )
    return db.session.execute(newer).scalar_one() // page_size + 1


# -- validation -------------------------------------------------------------


def validate(data: Mapping[str, Any], endpoint: Endpoint | None = None) -> dict[str, Any]:
    """Check the writable fields present in `data`; return them cleaned.

    Creating (`endpoint` None) needs `url`; the others take their defaults.
    Changing validates only the fields given. Raises `ValidationError` with
    every problem at once.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    creating = endpoint is None

    if "url" in data or creating:
        raw = data.get("url")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            errors["url"] = ["Enter the URL to monitor."]
        else:
            try:
                cleaned["url"] = _checked_url(raw, endpoint)
            except UrlError as exc:
                errors["url"] = [exc.message]

    if "name" in data:
        name = data["name"]
        if name is not None and not isinstance(name, str):
            errors["name"] = ["Enter the name as text."]
        elif name is not None and len(name) > MAX_NAME_LENGTH:
            errors["name"] = [f"A name can be at most {MAX_NAME_LENGTH} characters long."]
        elif name is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            errors["name"] = ["A name cannot contain control characters."]
        else:
            cleaned["name"] = (name or "").strip()

    if "interval_minutes" in data or creating:
        interval = data.get("interval_minutes", DEFAULT_INTERVAL)
        if isinstance(interval, float) and interval.is_integer():
            interval = int(interval)  # JSON (and the OpenAPI schema) count 5.0 as the integer 5
        if isinstance(interval, bool) or not isinstance(interval, int) or not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            errors["interval_minutes"] = [INTERVAL_MESSAGE]
        else:
            cleaned["interval_minutes"] = interval

    if "paused" in data or creating:
        paused = data.get("paused", False)
        if not isinstance(paused, bool):
            errors["paused"] = ["Must be true or false."]
        else:
            cleaned["paused"] = paused

    if "url" in cleaned and _url_taken(cleaned["url"], endpoint):
        errors["url"] = [DUPLICATE_URL]
    if errors:
        raise ValidationError(errors)
    return cleaned


def _checked_url(raw: Any, endpoint: Endpoint | None) -> str:
    """The normal form of a URL the server may monitor, else `UrlError`.

    An unchanged URL is not looked up again, so renaming an endpoint whose
    host is briefly unresolvable still works (the check re-applies the policy).
    """
    if endpoint is not None and isinstance(raw, str) and normalise_url(raw) == endpoint.url:
        return endpoint.url
    return validate_url(raw, allowed_networks=current_app.config["ALLOWED_PRIVATE_NETWORKS"])


def _url_taken(url: str, endpoint: Endpoint | None) -> bool:
    query = select(Endpoint.id).where(Endpoint.url == url)
    if endpoint is not None:
        query = query.where(Endpoint.id != endpoint.id)
    return db.session.execute(query.limit(1)).first() is not None


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or url


# -- writing ----------------------------------------------------------------


def create_endpoint(data: Mapping[str, Any], creator_id: uuid.UUID | None) -> Endpoint:
    """Validate and save a new endpoint with its audit event; enqueue its first check.

    The endpoint, its audit event and its first claim commit together; the
    check is enqueued only after the commit. If Redis is down the endpoint is
    still saved (pending) and the scheduler's next tick picks it up.
    """
    values = validate(data)
    paused = values["paused"]
    endpoint = Endpoint(
        id=uuid.uuid4(),
        name=values.get("name") or _host_of(values["url"]),
        url=values["url"],
        interval_minutes=values["interval_minutes"],
        paused=paused,
        status=EndpointStatus.PAUSED.value if paused else EndpointStatus.PENDING.value,
        created_by_id=creator_id,
    )
    db.session.add(endpoint)
    claim = None if paused else stamp_first_claim(endpoint)
    audit.record("endpoint.create", target=str(endpoint.id), detail={"name": endpoint.name, "url": endpoint.url})
    _commit_or_duplicate()
    if claim is not None:
        enqueue_after_commit(claim)
    return endpoint


def update_endpoint(endpoint: Endpoint, data: Mapping[str, Any]) -> Endpoint:
    """Change the fields given in `data`.

    Pausing stops the checks and shows the endpoint paused. Resuming, or
    pointing the endpoint at a new URL, makes it pending and enqueues a
    first check after the commit, so the dashboard soon shows fresh news.
    """
    values = validate(data, endpoint)
    changed = {key: value for key, value in values.items() if getattr(endpoint, key) != value}
    if "name" in changed and not changed["name"]:
        changed["name"] = _host_of(changed.get("url", endpoint.url))
        if changed["name"] == endpoint.name:
            del changed["name"]
    if not changed:
        return endpoint
    for key, value in changed.items():
        setattr(endpoint, key, value)
    claim: Claim | None = None
    if endpoint.paused:
        endpoint.status = EndpointStatus.PAUSED.value
    elif "paused" in changed or "url" in changed:
        endpoint.status = EndpointStatus.PENDING.value
        claim = stamp_first_claim(endpoint)
    elif "interval_minutes" in changed and endpoint.next_check_at is not None:
        # A shorter interval should not wait out the slot of the longer one.
        endpoint.next_check_at = min(
            endpoint.next_check_at, next_slot(endpoint.id, endpoint.interval_minutes, utcnow())
        )
    endpoint.updated_at = utcnow()
    audit.record("endpoint.update", target=str(endpoint.id), detail={"changed": sorted(changed)})
    _commit_or_duplicate()
    if claim is not None:
        enqueue_after_commit(claim)
    return endpoint


def set_paused(endpoint: Endpoint, paused: bool) -> Endpoint:
    """Pause or resume an endpoint (the row's pause/resume button)."""
    return update_endpoint(endpoint, {"paused": paused})


def delete_endpoint(endpoint: Endpoint) -> None:
    """Delete an endpoint; the audit event is written in the same transaction, first.

    Checks already queued for it find no endpoint when they run and end quietly.
    """
    audit.record("endpoint.delete", target=str(endpoint.id), detail={"name": endpoint.name, "url": endpoint.url})
    db.session.flush()
    db.session.delete(endpoint)
    db.session.commit()


def _commit_or_duplicate() -> None:
    """Commit; a concurrent save of the same URL loses with a field message."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"url": [DUPLICATE_URL]}) from None
