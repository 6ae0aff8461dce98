"""The JSON API: `/api/endpoints/` and `/api/endpoints/<id>`, plus its documentation.

Views parse the request, call `monitorapp.endpoints` (the same functions the
dashboard calls) and answer JSON. Field problems answer 400
`{"errors": {"field": ["message"]}}`; every other error answers
`{"error": code, "message": text}` (see monitorapp/errors.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, g, jsonify, request, url_for
from flask_login import current_user

from monitorapp import endpoints
from monitorapp.api import bp
from monitorapp.api.openapi import openapi_document, readable_operations
from monitorapp.auth.access import login_required, mark, verified_required, write_required
from monitorapp.errors import error_response
from monitorapp.extensions import limiter
from monitorapp.models import Endpoint
from monitorapp.web import render

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
READ_ONLY_FIELDS = (
    "id",
    "status",
    "last_status_code",
    "last_latency_ms",
    "last_checked_at",
    "last_enqueued_at",
    "last_error",
    "created_at",
    "updated_at",
    "tenant_name",
)


def _rate_limit_key() -> str:
    """One budget per live API token, else per address.

    Only a token that authenticated (session.py, before the view) earns its own budget:
    keyed on whatever the header holds, every guessed token would start a fresh one.
    """
    token = g.get("api_token")
    if token is not None:
        return f"api-token:{token.id}"
    return "api-addr:" + (request.remote_addr or "unknown")


rate_limited = limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_rate_limit_key)


@bp.get("/")
@mark("public")
def docs():
    document = openapi_document()
    return render(
        "api/docs.html",
        document=document,
        operations=readable_operations(document),
        endpoint_schema=document["components"]["schemas"]["Endpoint"],
        read_only_fields=READ_ONLY_FIELDS,
    )


@bp.get("/openapi.json")
@mark("public")
def openapi():
    response = jsonify(openapi_document())
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/endpoints/")
@rate_limited
@login_required
def list_endpoints():
    page_number, page_size, search, status = _list_parameters()
    page = endpoints.list_endpoints(page_number, page_size, search, status)
    tenant_name = _tenant_name()

    def link(number: int) -> str:
        params: dict[str, Any] = {"page": number, "page_size": page_size}
        if search:
            params["search"] = search
        if status:
            params["status"] = status
        return url_for("api.list_endpoints", _external=True, **params)

    return jsonify(
        count=page.total,
        next=link(page.number + 1) if page.number < page.pages else None,
        previous=link(min(page.number - 1, page.pages)) if page.number > 1 else None,
        results=[serialise(endpoint, tenant_name) for endpoint in page.items],
    )


@bp.post("/endpoints/")
@rate_limited
@verified_required
def create_endpoint():
    writable = _writable(_json_body())
    try:
        endpoint = endpoints.create_endpoint(writable, creator_id=_acting_user_id())
    except endpoints.ValidationError as exc:
        return _field_errors(exc.errors)
    response = jsonify(serialise(endpoint, _tenant_name()))
    response.status_code = 201
    response.headers["Location"] = url_for("api.endpoint_detail", endpoint_id=endpoint.id, _external=True)
    return response


@bp.get("/endpoints/<uuid:endpoint_id>")
@rate_limited
@login_required
def endpoint_detail(endpoint_id: uuid.UUID):
    return jsonify(serialise(_get_endpoint_or_404(endpoint_id), _tenant_name()))


@bp.patch("/endpoints/<uuid:endpoint_id>")
@rate_limited
@write_required
def update_endpoint(endpoint_id: uuid.UUID):
    endpoint = _get_endpoint_or_404(endpoint_id)
    data = _json_body()
    writable = _writable(data, endpoint)
    try:
        endpoints.update_endpoint(endpoint, writable)
    except endpoints.ValidationError as exc:
        return _field_errors(exc.errors)
    return jsonify(serialise(endpoint, _tenant_name()))


@bp.delete("/endpoints/<uuid:endpoint_id>")
@rate_limited
@write_required
def delete_endpoint(endpoint_id: uuid.UUID):
    endpoints.delete_endpoint(_get_endpoint_or_404(endpoint_id))
    return "", 204


# -- helpers -------------------------------------------------------------------


def serialise(endpoint: Endpoint, tenant_name: str) -> dict[str, Any]:
    """An endpoint as the API shows it (the `Endpoint` schema in openapi.py)."""
    return {
        "id": str(endpoint.id),
        "name": endpoint.name,
        "url": endpoint.url,
        "interval_minutes": endpoint.interval_minutes,
        "paused": endpoint.paused,
        "status": endpoint.status,
        "last_status_code": endpoint.last_status_code,
        "last_latency_ms": endpoint.last_latency_ms,
        "last_checked_at": iso(endpoint.last_checked_at),
        "last_enqueued_at": iso(endpoint.last_enqueued_at),
        "last_error": endpoint.last_error,
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
        "tenant_name": tenant_name,
    }


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _tenant_name() -> str:
    return g.membership.tenant.name


def _acting_user_id() -> uuid.UUID:
    token = g.get("api_token")
    return token.user_id if token is not None else current_user.id


def _get_endpoint_or_404(endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = endpoints.get_endpoint(endpoint_id)
    if endpoint is None:
        abort(error_response(404, "No endpoint with this id in your team."))
    return endpoint


def _field_errors(errors: dict[str, list[str]]):
    response = jsonify(errors=errors)
    response.status_code = 400
    return response


def _json_body() -> dict[str, Any]:
    """The request's JSON object; 415 for another media type, 400 if it is not an object."""
    if not request.is_json:
        abort(error_response(415, "Send the body as JSON with Content-Type: application/json."))
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(_field_errors({"body": ["Send a JSON object, for example {\"url\": \"https://example.com/\"}."]}))
    try:
        # JSON may escape half of a surrogate pair ("\ud800"); no database can store one.
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        abort(_field_errors({"body": ["Send valid Unicode text: the body holds an unpaired surrogate."]}))
    return data


def _writable(data: dict[str, Any], endpoint: Endpoint | None = None) -> dict[str, Any]:
    """The writable fields of `data`; read-only or unknown fields answer 400 with every problem."""
    errors: dict[str, list[str]] = {}
    for key in data:
        if key in READ_ONLY_FIELDS:
            errors[key] = ["This field is read-only."]
        elif key not in endpoints.WRITABLE_FIELDS:
            errors[key] = ["Unknown field."]
    writable = {key: value for key, value in data.items() if key in endpoints.WRITABLE_FIELDS}
    if errors:
        try:
            endpoints.validate(writable, endpoint)
        except endpoints.ValidationError as exc:
            errors.update(exc.errors)
        abort(_field_errors(errors))
    return writable


def _list_parameters() -> tuple[int, int, str | None, str | None]:
    errors: dict[str, list[str]] = {}
    page = _positive_int("page", 1, errors)
    page_size = _positive_int("page_size", DEFAULT_PAGE_SIZE, errors)
    if "page_size" not in errors and page_size > MAX_PAGE_SIZE:
        errors["page_size"] = [f"Must be a whole number from 1 to {MAX_PAGE_SIZE}."]
    search = request.args.get("search", "").strip() or None
    if search and len(search) > endpoints.MAX_SEARCH_LENGTH:
        errors["search"] = [f"Must be at most {endpoints.MAX_SEARCH_LENGTH} characters."]
    status = request.args.get("status")
    if status is not None and status not in endpoints.STATUSES:
        errors["status"] = [f"Must be one of: {', '.join(endpoints.STATUSES)}."]
    if errors:
        abort(_field_errors(errors))
    return page, page_size, search, status


def _positive_int(name: str, default: int, errors: dict[str, list[str]]) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        errors[name] = ["Must be a whole number of at least 1." if name == "page" else
                        f"Must be a whole number from 1 to {MAX_PAGE_SIZE}."]
        return default
    return int(raw)
