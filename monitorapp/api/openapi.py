"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json.

Kept in code beside the views, built from the same constants (interval
bounds, page sizes, statuses), and proved against the running app by the
schemathesis test in tests/api/. Change a view, change this.
"""

from __future__ import annotations

from typing import Any

from monitorapp import __version__, endpoints
from monitorapp.monitoring.urls import MAX_URL_LENGTH

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, schema: str = "Error", headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
    if headers:
        response["headers"] = headers
    return response


RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}},
}

RESPONSES: dict[str, Any] = {
    "ValidationFailed": _error(
        "The request has field errors: a message list per field (`body` for the request as a whole).",
        "ValidationErrors",
    ),
    "Unauthorized": _error(
        "No token, or a token that is wrong, revoked or whose user left the team.",
        headers={
            "WWW-Authenticate": {
                "description": 'Always `Bearer realm="monitorapp"`.',
                "schema": {"type": "string"},
            }
        },
    ),
    "Forbidden": _error(
        "The token is read-only, the user is a viewer in the team, or (on create) the user's email address "
        "is not verified yet."
    ),
    "NotFound": _error("No endpoint with this id in the token's team (ids of other teams are not found either)."),
    "PayloadTooLarge": _error("The body is larger than the server accepts (MAX_CONTENT_LENGTH, 64 KiB by default)."),
    "UnsupportedMediaType": _error("The body is not sent as `application/json`."),
    "RateLimited": _error("Too many requests for this token; see `Retry-After`.", headers=RATE_LIMIT_HEADERS),
}

STATUS_DESCRIPTION = (
    "`pending` until the first check reports, then `up` or `down`; `paused` while paused. "
    "Read-only: pause and resume with `paused`."
)


def _schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time", "readOnly": True}
    writable = {
        "name": {
            "type": ["string", "null"],
            "maxLength": endpoints.MAX_NAME_LENGTH,
            "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
            "description": "A label for people. Empty or null means the URL's host name.",
            "examples": ["Shop health check"],
        },
        "url": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_URL_LENGTH,
            "description": (
                "An http or https URL, at most 2048 characters, without user name or password. It is stored "
                "normalised (lower-case scheme and host, IDNA host, default port dropped, empty path as `/`, "
                "fragment dropped) and must be unique in the team. The host must resolve, and only to public "
                "addresses: loopback, private, link-local (169.254.169.254), CGNAT, multicast and reserved "
                "ranges are refused unless the server opens a network with ALLOWED_PRIVATE_NETWORKS."
            ),
            "examples": ["https://example.com/health"],
        },
        "interval_minutes": {
            "type": "integer",
            "minimum": endpoints.MIN_INTERVAL,
            "maximum": endpoints.MAX_INTERVAL,
            "default": endpoints.DEFAULT_INTERVAL,
            "description": "Minutes between checks.",
        },
        "paused": {
            "type": "boolean",
            "default": False,
            "description": "Paused endpoints are not checked. Resuming makes it pending and checks it at once.",
        },
    }
    return {
        "Endpoint": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "id", "name", "url", "interval_minutes", "paused", "status", "last_status_code",
                "last_latency_ms", "last_checked_at", "last_enqueued_at", "last_error", "created_at",
                "updated_at", "tenant_name",
            ],
            "properties": {
                "id": {"type": "string", "format": "uuid", "readOnly": True},
                "name": {"type": "string", "maxLength": endpoints.MAX_NAME_LENGTH},
                "url": {"type": "string", "maxLength": MAX_URL_LENGTH},
                "interval_minutes": writable["interval_minutes"],
                "paused": writable["paused"],
                "status": {
                    "type": "string",
                    "enum": list(endpoints.STATUSES),
                    "readOnly": True,
                    "description": STATUS_DESCRIPTION,
                },
                "last_status_code": {
                    "type": ["integer", "null"],
                    "readOnly": True,
                    "description": "The HTTP status of the last check; null before one, or when no answer came.",
                },
                "last_latency_ms": {"type": ["integer", "null"], "minimum": 0, "readOnly": True},
                "last_checked_at": {**nullable_time, "description": "When the last check finished (UTC)."},
                "last_enqueued_at": {**nullable_time, "description": "When a check was last queued (UTC)."},
                "last_error": {
                    "type": ["string", "null"],
                    "maxLength": 255,
                    "readOnly": True,
                    "description": "Why the last check failed, in words safe to show; null when it passed.",
                },
                "created_at": {"type": "string", "format": "date-time", "readOnly": True},
                "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
                "tenant_name": {"type": "string", "readOnly": True, "description": "The team's name."},
            },
        },
        "EndpointCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": writable,
            "description": "Read-only fields (`id`, `status`, `last_*`, `created_at`, `updated_at`, "
            "`tenant_name`) are refused with 400, as are unknown fields.",
        },
        "EndpointUpdate": {
            "type": "object",
            "additionalProperties": False,
            "properties": writable,
            "description": "Only the fields given change. Read-only and unknown fields are refused with 400.",
        },
        "EndpointPage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0, "description": "Endpoints matching, on all pages."},
                "next": {"type": ["string", "null"], "format": "uri", "description": "The next page, or null."},
                "previous": {
                    "type": ["string", "null"],
                    "format": "uri",
                    "description": "The previous page (the last page when `page` is past the end), or null.",
                },
                "results": {"type": "array", "items": _ref("Endpoint")},
            },
        },
        "ValidationErrors": {
            "type": "object",
            "additionalProperties": False,
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                }
            },
            "examples": [{"errors": {"url": ["Only http and https URLs can be monitored, not ftp."]}}],
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "A stable code: unauthorized, forbidden, not_found, method_not_allowed, "
                    "payload_too_large, unsupported_media_type, rate_limited, server_error.",
                },
                "message": {"type": "string", "description": "What went wrong, for people."},
            },
        },
    }


def _id_parameter() -> dict[str, Any]:
    return {
        "name": "endpoint_id",
        "in": "path",
        "required": True,
        "description": "The endpoint's id.",
        "schema": {"type": "string", "format": "uuid"},
    }


def _responses(*names: str, **codes: Any) -> dict[str, Any]:
    """Operation responses: the ones given plus the errors every call can meet."""
    responses = dict(codes)
    refs = {
        "400": "ValidationFailed",
        "401": "Unauthorized",
        "403": "Forbidden",
        "404": "NotFound",
        "413": "PayloadTooLarge",
        "415": "UnsupportedMediaType",
        "429": "RateLimited",
    }
    for code in ("401", "429", *names):
        responses[code] = {"$ref": f"#/components/responses/{refs[code]}"}
    return dict(sorted(responses.items()))


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema)}}}


def openapi_document() -> dict[str, Any]:
    """The whole document, as a dict ready for `jsonify`."""
    endpoint_ok = {"content": {JSON: {"schema": _ref("Endpoint")}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "monitorapp API",
            "version": __version__,
            "description": (
                "Manage the endpoints (monitored URLs) of your team. Authenticate every call with a personal "
                "API token from your account page: `Authorization: Bearer mon_…`. Read tokens may list and "
                "retrieve; write tokens of members and owners may also create, change and delete. Timestamps "
                "are ISO 8601 in UTC. Errors are JSON: field problems as "
                '`{"errors": {"field": ["message"]}}`, everything else as `{"error": code, "message": text}`. '
                "A method a path does not list answers 405 with an `Allow` header."
            ),
        },
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "endpoints", "description": "Monitored URLs."}],
        "paths": {
            "/api/endpoints/": {
                "get": {
                    "operationId": "listEndpoints",
                    "tags": ["endpoints"],
                    "summary": "List the team's endpoints, newest first",
                    "parameters": [
                        {
                            "name": "page",
                            "in": "query",
                            "description": "Page number, from 1. A page past the end answers an empty `results`.",
                            "schema": {"type": "integer", "minimum": 1, "default": 1},
                        },
                        {
                            "name": "page_size",
                            "in": "query",
                            "description": "Endpoints per page.",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
                        },
                        {
                            "name": "search",
                            "in": "query",
                            "description": "Only endpoints whose name or URL contains this text (any case).",
                            "schema": {"type": "string", "maxLength": endpoints.MAX_SEARCH_LENGTH},
                        },
                        {
                            "name": "status",
                            "in": "query",
                            "description": "Only endpoints with this status.",
                            "schema": {"type": "string", "enum": list(endpoints.STATUSES)},
                        },
                    ],
                    "responses": _responses(
                        "400",
                        **{"200": {"description": "One page of endpoints.",
                                   "content": {JSON: {"schema": _ref("EndpointPage")}}}},
                    ),
                },
                "post": {
                    "operationId": "createEndpoint",
                    "tags": ["endpoints"],
                    "summary": "Add an endpoint; its first check is queued at once",
                    "requestBody": _body("EndpointCreate"),
                    "responses": _responses(
                        "400", "403", "413", "415",
                        **{"201": {
                            "description": "Created. `Location` names the new endpoint.",
                            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                            **endpoint_ok,
                        }},
                    ),
                },
            },
            "/api/endpoints/{endpoint_id}": {
                "parameters": [_id_parameter()],
                "get": {
                    "operationId": "getEndpoint",
                    "tags": ["endpoints"],
                    "summary": "Retrieve one endpoint",
                    "responses": _responses("404", **{"200": {"description": "The endpoint.", **endpoint_ok}}),
                },
                "patch": {
                    "operationId": "updateEndpoint",
                    "tags": ["endpoints"],
                    "summary": "Change some fields of an endpoint (pause or resume with `paused`)",
                    "requestBody": _body("EndpointUpdate"),
                    "responses": _responses(
                        "400", "403", "404", "413", "415",
                        **{"200": {"description": "The changed endpoint.", **endpoint_ok}},
                    ),
                },
                "delete": {
                    "operationId": "deleteEndpoint",
                    "tags": ["endpoints"],
                    "summary": "Delete an endpoint and its check history",
                    "responses": _responses("403", "404", **{"204": {"description": "Deleted."}}),
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (`mon_…`), scoped read or write, created on the account page.",
                }
            },
            "schemas": _schemas(),
            "responses": RESPONSES,
        },
    }


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def readable_operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The operations in the order listed, with references resolved, for the docs page."""
    operations = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in ("get", "post", "patch", "delete"):
            operation = item.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody")
            body_schema = _resolve(document, body["content"][JSON]["schema"]) if body else None
            responses = []
            for code, response in operation["responses"].items():
                response = _resolve(document, response)
                schema = response.get("content", {}).get(JSON, {}).get("schema", {})
                responses.append(
                    {
                        "code": code,
                        "description": response["description"],
                        "schema": schema.get("$ref", "").rsplit("/", 1)[-1] or None,
                    }
                )
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "id": operation["operationId"],
                    "summary": operation["summary"],
                    "parameters": shared + operation.get("parameters", []),
                    "body": body_schema,
                    "responses": responses,
                }
            )
    return operations
