"""Pages: notification channels, incidents, the endpoint page.

Views parse, call a domain function (notify/channels.py, alerts/incidents.py,
alerts/history.py) and render a page or, for htmx, one block of it. Foreign
ids are simply not found (404): every lookup goes through the team filter.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from monitorapp.alerts import bp, history
from monitorapp.alerts import incidents as incident_store
from monitorapp.auth.access import can_write, login_required, require_write, write_required
from monitorapp.auth.session import safe_next
from monitorapp.extensions import db
from monitorapp.logging import PERFORMANCE, log_event
from monitorapp.models import Endpoint, Membership, utcnow
from monitorapp.notify import channels as channel_store
from monitorapp.notify.messages import format_duration
from monitorapp.notify.sending import send_test
from monitorapp.web import is_htmx, render

CHANNELS = "alerts/channels.html"
INCIDENTS = "alerts/incidents.html"
ENDPOINT = "alerts/endpoint.html"
MIN_THRESHOLD, MAX_THRESHOLD = 1, 10


@bp.app_context_processor
def _banner() -> dict[str, Any]:
    # Called by templates/alerts/_status_banner.html, so only the pages that include it query.
    return {"status_banner": incident_store.status_banner}


@bp.app_template_filter("duration")
def duration(span: timedelta) -> str:
    return format_duration(span)


def _page_number(values: MultiDict, name: str = "page") -> int:
    try:
        return max(1, int(values.get(name, "1")))
    except ValueError:
        return 1


def _back(default: str) -> str:
    """A `next` path inside the app, else `default`."""
    # The one check every `next` goes through: a tab or newline, dropped by browsers
    # (and by Werkzeug's Location encoding), turns "/\t/host" into "//host".
    return safe_next(request.form.get("next") or request.args.get("next")) or default


# -- channels -----------------------------------------------------------------------


def _channel_or_404(channel_id: uuid.UUID):
    channel = channel_store.get_channel(channel_id)
    if channel is None:
        abort(404)
    return channel


def _channel_context(**extra: Any) -> dict[str, Any]:
    from sqlalchemy import select

    members = db.session.scalars(select(Membership).order_by(Membership.created_at)).all()
    endpoints = db.session.execute(select(Endpoint.id, Endpoint.name).order_by(Endpoint.name)).all()
    context = {
        "kinds": channel_store.kinds(),
        "members": members,
        "endpoints": endpoints,
        "may_write": can_write(),
        "form": MultiDict(),
        "form_errors": {},
    }
    context.update(extra)
    return context


@bp.get("/channels")
@login_required
def channels():
    return render(CHANNELS, channels=channel_store.list_channels(), **_channel_context())


@bp.post("/channels")
@write_required
def create_channel():
    data = _channel_data(request.form)
    try:
        channel = channel_store.create_channel(**data)
    except channel_store.ChannelError as exc:
        db.session.rollback()
        return render(
            CHANNELS,
            block="channel_form",
            status=422,
            channels=channel_store.list_channels(),
            **_channel_context(form=request.form, form_errors=exc.errors),
        )
    db.session.commit()
    flash(f"Added the channel {channel.name}. Use “Send test” to try it.", "success")
    if is_htmx():
        return render(
            CHANNELS, block="channels_created", channels=channel_store.list_channels(), **_channel_context()
        )
    return redirect(url_for("alerts.channels"), code=303)


@bp.route("/channels/<uuid:channel_id>/edit", methods=["GET", "POST"])
@write_required
def edit_channel(channel_id: uuid.UUID):
    channel = _channel_or_404(channel_id)
    if request.method == "GET":
        form = MultiDict(
            [("name", channel.name), ("reminder_hours", str(channel.reminder_hours)),
             ("all_endpoints", "1" if channel.all_endpoints else "0")]
            + [("email_recipients", user_id) for user_id in channel.email_recipients or []]
            + [("endpoint_ids", str(endpoint_id)) for endpoint_id in channel_store.covered_endpoint_ids(channel)]
        )
        return render("alerts/channel_edit.html", channel=channel, **_channel_context(form=form))
    try:
        channel_store.update_channel(channel, _channel_data(request.form))
    except channel_store.ChannelError as exc:
        db.session.rollback()
        channel = _channel_or_404(channel_id)
        return render(
            "alerts/channel_edit.html",
            block="channel_form",
            status=422,
            channel=channel,
            **_channel_context(form=request.form, form_errors=exc.errors),
        )
    db.session.commit()
    flash(f"Saved the channel {channel.name}.", "success")
    return redirect(url_for("alerts.channels"), code=303)


@bp.post("/channels/<uuid:channel_id>/toggle")
@write_required
def toggle_channel(channel_id: uuid.UUID):
    channel = _channel_or_404(channel_id)
    channel_store.set_enabled(channel, not channel.enabled)
    db.session.commit()
    flash(f"{'Enabled' if channel.enabled else 'Disabled'} the channel {channel.name}.", "success")
    return _channels_changed()


@bp.post("/channels/<uuid:channel_id>/delete")
@write_required
def delete_channel(channel_id: uuid.UUID):
    channel = _channel_or_404(channel_id)
    name = channel.name
    channel_store.delete_channel(channel)
    db.session.commit()
    flash(f"Deleted the channel {name}.", "success")
    return _channels_changed()


@bp.post("/channels/<uuid:channel_id>/test")
@write_required
def test_channel(channel_id: uuid.UUID):
    channel = _channel_or_404(channel_id)
    error = send_test(channel)
    db.session.commit()
    if error:
        flash(f"The test through {channel.name} failed: {error}", "error")
    else:
        flash(f"Sent a test through {channel.name}.", "success")
    return _channels_changed()


def _channels_changed():
    if is_htmx():
        return render(CHANNELS, block="channel_list", channels=channel_store.list_channels(), **_channel_context())
    return redirect(url_for("alerts.channels"), code=303)


def _channel_data(form: MultiDict) -> dict[str, Any]:
    return {
        "name": form.get("name"),
        "kind": form.get("kind"),
        "target": form.get("target"),
        "email_recipients": form.getlist("email_recipients"),
        "all_endpoints": form.get("all_endpoints", "1"),
        "endpoint_ids": form.getlist("endpoint_ids"),
        "reminder_hours": form.get("reminder_hours"),
    }


# -- incidents ----------------------------------------------------------------------


@bp.get("/incidents")
@login_required
def incidents():
    state = request.args.get("state", "")
    state = state if state in incident_store.STATES else ""
    page = incident_store.list_incidents(state, _page_number(request.args))
    return render(INCIDENTS, block="incident_list", page=page, state=state, may_write=can_write())


@bp.post("/incidents/<uuid:incident_id>/acknowledge")
@write_required
def acknowledge(incident_id: uuid.UUID):
    incident = incident_store.get_incident(incident_id)
    if incident is None:
        abort(404)
    if incident_store.acknowledge(incident, current_user.id):
        db.session.commit()
        flash(f"Acknowledged the incident of {incident.endpoint.name}: no more reminders for it.", "success")
    if is_htmx():
        return render("alerts/_incident_fragment.html", incident=incident, may_write=True)
    return redirect(_back(url_for("alerts.incidents")), code=303)


# -- the endpoint page ------------------------------------------------------------------


def _endpoint_or_404(endpoint_id: uuid.UUID) -> Endpoint:
    from sqlalchemy import select

    endpoint = db.session.scalars(select(Endpoint).where(Endpoint.id == endpoint_id)).first()
    if endpoint is None:
        abort(404)
    return endpoint


@bp.route("/endpoints/<uuid:endpoint_id>", methods=["GET", "POST"])
@login_required
def endpoint(endpoint_id: uuid.UUID):
    """The endpoint's history; a POST changes its alerting thresholds."""
    started = time.monotonic()
    if request.method == "POST":
        # The role first, as on every other write: a viewer learns nothing about which ids exist.
        require_write()
    found = _endpoint_or_404(endpoint_id)
    form_errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        form_errors = _save_thresholds(found, request.form)
        if not form_errors:
            flash("Saved the alerting settings.", "success")
            return redirect(url_for("alerts.endpoint", endpoint_id=found.id), code=303)
        status = 422
    now = utcnow()
    buckets = history.latency_buckets(found.id, now)
    uptimes, days = history.uptimes_and_days(found.id, now)
    timeline = incident_store.endpoint_incidents(found.id)
    # One open incident at most, and it is the newest: the timeline already has it.
    current = timeline[0] if timeline and timeline[0].resolved_at is None else None
    context = {
        "endpoint": found,
        "incident": current,
        "uptimes": uptimes,
        "chart": history.latency_chart(buckets, now),
        "days": days,
        "checks": history.recent_checks(found.id, _page_number(request.args, "checks_page")),
        "timeline": timeline,
        "may_write": can_write(),
        "form": request.form if request.method == "POST" else None,
        "form_errors": form_errors,
    }
    response = render(ENDPOINT, block="thresholds" if status == 422 else None, status=status, **context)
    log_event(PERFORMANCE, "endpoint page", seconds=round(time.monotonic() - started, 4))
    return response


@bp.get("/endpoints/<uuid:endpoint_id>/checks")
@login_required
def endpoint_checks(endpoint_id: uuid.UUID):
    found = _endpoint_or_404(endpoint_id)
    checks = history.recent_checks(found.id, _page_number(request.args))
    if is_htmx():
        return render("alerts/_checks.html", endpoint=found, checks=checks)
    return redirect(url_for("alerts.endpoint", endpoint_id=found.id, checks_page=checks.number), code=303)


def _save_thresholds(endpoint: Endpoint, form: MultiDict) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    values = {}
    for name in ("failure_threshold", "recovery_threshold"):
        try:
            values[name] = int((form.get(name) or "").strip())
        except ValueError:
            values[name] = 0
        if not MIN_THRESHOLD <= values[name] <= MAX_THRESHOLD:
            errors[name] = [f"Enter a whole number from {MIN_THRESHOLD} to {MAX_THRESHOLD}."]
    if errors:
        return errors
    from monitorapp.auth import audit

    endpoint.failure_threshold = values["failure_threshold"]
    endpoint.recovery_threshold = values["recovery_threshold"]
    audit.record("endpoint.alerting_changed", target=endpoint.name, detail=values)
    db.session.commit()
    return {}
