"""Error pages for browsers and JSON errors for the API.

Nothing internal reaches a client: a 500 answers with a fixed message and the
exception goes to the log (and to Sentry when configured).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("monitorapp.errors")

TITLES = {
    400: ("Bad request", "The request could not be understood. Check the form and try again."),
    401: ("Sign in required", "Please sign in to continue."),
    403: ("Not allowed", "Your role in this team does not allow that."),
    404: ("Not found", "There is nothing here. It may have been deleted, or the address is wrong."),
    405: ("Method not allowed", "That action cannot be done this way."),
    413: ("Too large", "The request was larger than the server accepts."),
    415: ("Unsupported media type", "Send the body as application/json."),
    422: ("Unprocessable", "The request could not be processed."),
    429: ("Too many requests", "You have made too many requests. Wait a moment and try again."),
    500: ("Something went wrong", "An unexpected error happened. It has been logged; please try again."),
    503: ("Unavailable", "The service is briefly unavailable. Please try again shortly."),
}

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/health/") or request.path == "/metrics/"


def error_response(code: int, message: str | None = None, headers: dict | None = None):
    title, default_message = TITLES.get(code, (f"Error {code}", "The request failed."))
    if wants_json():
        response = jsonify(error=ERROR_CODES.get(code, "error"), message=message or default_message)
        response.status_code = code
    else:
        from flask import render_template

        from monitorapp.web import is_htmx

        template = "errors/fragment.html" if is_htmx() else "errors/page.html"
        body = render_template(template, code=code, title=title, message=message or default_message)
        from flask import current_app

        response = current_app.make_response((body, code))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_http(exc: HTTPException):
    code = exc.code or 500
    if code >= 500:
        return _handle_unexpected(exc)
    headers = {
        name: value for name, value in exc.get_headers() if name.lower() not in ("content-type", "content-length")
    }
    # Our own aborts may carry a user-facing description; Werkzeug's defaults are replaced by ours.
    description = exc.description if getattr(exc, "_monitorapp_message", False) else None
    return error_response(code, description, headers)


def _handle_unexpected(exc: Exception):
    original = getattr(exc, "original_exception", None) or exc
    if not isinstance(original, HTTPException):
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
    code = exc.code if isinstance(exc, HTTPException) and exc.code else 500
    return error_response(code)


def _refuse_nul_characters():
    """Refuse a NUL character in a form field or query parameter with a 400.

    Nobody types one, and PostgreSQL refuses it in text (a 500 on whatever
    column the field reaches: a sign-in email, a team or channel name); one
    rule at the door instead of one per field. The JSON API validates its own
    parameters and bodies and answers in its documented error shape.
    """
    if request.path.startswith("/api/"):
        return None
    for values in (request.args, request.form):
        if any("\x00" in value for _, listed in values.lists() for value in listed):
            return error_response(400, "The request contains a NUL character, which no field accepts.")
    return None


def register(app: Flask) -> None:
    app.before_request(_refuse_nul_characters)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(InternalServerError, _handle_unexpected)
    app.register_error_handler(Exception, _handle_unexpected)
