"""The home page and the endpoints dashboard.

Every view answers a whole page to a plain request and one named block of
the same template to htmx (see `monitorapp.web.render`). Without JavaScript
the forms post and redirect (POST-redirect-GET); with htmx they answer the
refreshed table, and 422 with the form and its messages when input is wrong.
The listing's place (page, search, status filter) travels with every action,
so the table re-renders where the user was.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from monitorapp import endpoints
from monitorapp.auth.access import can_write, is_verified, login_required, mark, verified_required, write_required
from monitorapp.dashboard import bp
from monitorapp.logging import PERFORMANCE, log_event
from monitorapp.models import Endpoint, utcnow
from monitorapp.web import is_htmx, render, url_for_each

PAGE_SIZE = 25
TEMPLATE = "dashboard/index.html"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where the user is in the listing: page, search and status filter."""

    page: int = 1
    q: str = ""
    status: str = ""

    @classmethod
    def from_values(cls, values: MultiDict) -> Place:
        try:
            page = max(1, int(values.get("page", "1")))
        except ValueError:
            page = 1
        q = (values.get("q") or "").strip()[: endpoints.MAX_SEARCH_LENGTH]
        status = values.get("status") or ""
        return cls(page=page, q=q, status=status if status in endpoints.STATUSES else "")

    def params(self, page: int | None = None) -> dict[str, Any]:
        """Query parameters for this place (empty ones left out, for short URLs)."""
        params: dict[str, Any] = {"page": page or self.page}
        if params["page"] == 1:
            del params["page"]
        if self.q:
            params["q"] = self.q
        if self.status:
            params["status"] = self.status
        return params

    def url(self, page: int | None = None) -> str:
        return url_for("dashboard.index", **self.params(page))

    def with_page(self, page: int) -> Place:
        return Place(page=page, q=self.q, status=self.status)


@bp.get("/")
@mark("public")
def home():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    return render("home.html")


@bp.get("/dashboard")
@login_required
def index():
    place = Place.from_values(request.args)
    # The 15-second refresh asks for the rows only; everything else for the table.
    block = "rows" if request.headers.get("HX-Target") == "endpoint-rows" else "table"
    return _render_listing(place, block=block)


@bp.post("/dashboard/endpoints")
@verified_required
def create():
    place = Place()
    try:
        endpoint = endpoints.create_endpoint(_form_data(request.form), creator_id=current_user.id)
    except endpoints.ValidationError as exc:
        # The form comes back in place with its messages and the user's input.
        return _render_listing(place, block="create_form", status=422, form=request.form, form_errors=exc.errors)
    flash(f"Added {endpoint.name}. Its first check is on its way.", "success")
    if not is_htmx():
        return redirect(place.url(), code=303)
    # Newest first: the new endpoint is on the first page of the unfiltered list.
    response = _render_listing(place.with_page(endpoints.page_of(endpoint, PAGE_SIZE)), block="created")
    response.headers["HX-Push-Url"] = place.url()
    return response


@bp.route("/dashboard/endpoints/<uuid:endpoint_id>/edit", methods=["GET", "POST"])
@write_required
def edit(endpoint_id: uuid.UUID):
    endpoint = _get_endpoint_or_404(endpoint_id)
    if request.method == "GET":
        return render("dashboard/edit.html", endpoint=endpoint, form=_endpoint_form(endpoint), form_errors={})
    data = _form_data(request.form, with_paused=True)
    try:
        endpoints.update_endpoint(endpoint, data)
    except endpoints.ValidationError as exc:
        return render("dashboard/edit.html", status=422, endpoint=endpoint, form=request.form, form_errors=exc.errors)
    flash(f"Saved {endpoint.name}.", "success")
    return redirect(url_for("dashboard.index"), code=303)


@bp.post("/dashboard/endpoints/<uuid:endpoint_id>/pause")
@write_required
def pause(endpoint_id: uuid.UUID):
    endpoint = _get_endpoint_or_404(endpoint_id)
    paused = request.form.get("paused") == "1"
    endpoints.set_paused(endpoint, paused)
    flash(f"{'Paused' if paused else 'Resumed'} {endpoint.name}.", "success")
    return _after_change(Place.from_values(request.form))


@bp.route("/dashboard/endpoints/<uuid:endpoint_id>/delete", methods=["GET", "POST"])
@write_required
def delete(endpoint_id: uuid.UUID):
    endpoint = _get_endpoint_or_404(endpoint_id)
    if request.method == "GET":
        # Without JavaScript there is no hx-confirm: this page asks instead.
        return render("dashboard/delete.html", endpoint=endpoint, place=Place.from_values(request.args))
    name = endpoint.name
    endpoints.delete_endpoint(endpoint)
    flash(f"Deleted {name}.", "success")
    return _after_change(Place.from_values(request.form))


# -- template filters ------------------------------------------------------------


@bp.app_template_filter("ago")
def ago(moment: datetime) -> str:
    """A short relative time: "just now", "3 min ago", "2 h ago", "5 days ago"."""
    seconds = max(0, int((utcnow() - moment).total_seconds()))
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


@bp.app_template_filter("utc_exact")
def utc_exact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("utc_iso")
def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- helpers -------------------------------------------------------------------


def _get_endpoint_or_404(endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = endpoints.get_endpoint(endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


def _after_change(place: Place):
    """The table where the user was (or the page before, if that one is now empty)."""
    page = endpoints.list_endpoints(place.page, PAGE_SIZE, place.q or None, place.status or None, clamp=True)
    place = place.with_page(page.number)
    if not is_htmx():
        return redirect(place.url(), code=303)
    response = _render_listing(place, block="table", page=page)
    response.headers["HX-Replace-Url"] = place.url()
    return response


def _render_listing(place: Place, block: str, status: int = 200, page=None, **context: Any):
    """Render the dashboard (or one block of it) and log how long it took."""
    started = time.monotonic()
    try:
        if page is None:
            page = endpoints.list_endpoints(place.page, PAGE_SIZE, place.q or None, place.status or None, clamp=True)
            place = place.with_page(page.number)
        context.setdefault("form", MultiDict())
        context.setdefault("form_errors", {})
        response = render(
            TEMPLATE,
            block=block,
            status=status,
            page=page,
            place=place,
            may_write=can_write(),
            may_add=can_write() and is_verified(),
            team_name=g.membership.tenant.name,
            interval_default=endpoints.DEFAULT_INTERVAL,
            statuses=endpoints.STATUSES,
            row_urls=_row_urls(place),
            **context,
        )
    except Exception:
        log_event(
            PERFORMANCE,
            "dashboard render failed",
            level=logging.ERROR,
            page=place.page,
            block=block if is_htmx() else "page",
        )
        log.exception("dashboard render failed on page %s", place.page)
        raise
    log_event(
        PERFORMANCE,
        "dashboard rendered",
        page=page.number,
        rows=len(page.items),
        total=page.total,
        block=block if is_htmx() else "page",
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return response


def _row_urls(place: Place) -> SimpleNamespace:
    """The links and actions of each row, built once per table (bench/web.py)."""
    return SimpleNamespace(
        page=url_for_each("alerts.endpoint"),
        edit=url_for_each("dashboard.edit"),
        pause=url_for_each("dashboard.pause"),
        delete=url_for_each("dashboard.delete"),
        confirm_delete=url_for_each("dashboard.delete", **place.params()),
    )


def _form_data(form: MultiDict, with_paused: bool = False) -> dict[str, Any]:
    """The form's fields, typed as the domain expects; bad numbers pass through
    as text so the one validation path words the message."""
    raw_interval = (form.get("interval_minutes") or "").strip()
    try:
        interval: Any = int(raw_interval)
    except ValueError:
        interval = raw_interval
    data: dict[str, Any] = {
        "url": form.get("url", ""),
        "name": form.get("name", ""),
        "interval_minutes": interval,
    }
    if with_paused:
        data["paused"] = form.get("paused") in ("1", "on", "true", "y")
    return data


def _endpoint_form(endpoint: Endpoint) -> MultiDict:
    values = {"name": endpoint.name, "url": endpoint.url, "interval_minutes": str(endpoint.interval_minutes)}
    if endpoint.paused:
        values["paused"] = "1"
    return MultiDict(values)
