"""Request-wide web behaviour: page-or-fragment rendering, headers, HTTPS.

One switch (`is_htmx`) decides whether a view answers with a whole page or
one named block of the same template, and every response says
`Vary: HX-Request` so caches keep the two apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, has_request_context, redirect, request, url_for
from jinja2_fragments.flask import render_block
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


def is_htmx() -> bool:
    """True for an htmx request that wants a fragment (not a history restore)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def render(template: str, block: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render the whole page, or only `block` of it for an htmx request."""
    from flask import render_template

    if block is not None and is_htmx():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = current_app.make_response((body, status))
    response.vary.add("HX-Request")
    return response


def url_for_each(endpoint: str, key: str = "endpoint_id", **values: Any) -> Callable[[uuid.UUID], str]:
    """`url_for(endpoint, <key>=id, **values)` for many ids: built once, then filled in.

    A table asked `url_for` six times a row, 150 times a page (about a third
    of rendering the dashboard's rows, bench/web.py); this asks it once.
    """
    marker = uuid.UUID(int=0)
    before, found, after = url_for(endpoint, **{key: marker}, **values).partition(str(marker))
    if not found:
        raise ValueError(f"{endpoint} does not put {key} in its URL")
    return lambda value: f"{before}{value}{after}"


def htmx_redirect(location: str) -> Response:
    """Move the browser: `HX-Redirect` for htmx (it cannot follow a 3xx), else 303."""
    if is_htmx():
        response = current_app.make_response(("", 200))
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=303)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    seconds = current_app.config.get("HSTS_SECONDS")
    if seconds and request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={seconds}; includeSubDomains")
    if "HX-Request" in request.headers or response.mimetype == "text/html":
        response.vary.add("HX-Request")
    return response


def _https_redirect():
    if request.is_secure or request.path.startswith("/health/"):
        return None
    url = request.url.replace("http://", "https://", 1)
    return redirect(url, code=308)


def _count_queries(app: Flask) -> None:
    """Answer `X-Query-Count` with the SQL statements a request ran (benchmarks only).

    The dashboard benchmark uses it to show that queries per request stay
    constant however many endpoints a team has.
    """
    from flask import g
    from sqlalchemy import event

    from monitorapp.extensions import db

    def count(*args, **kwargs) -> None:
        from flask import has_request_context

        if has_request_context():
            g.query_count = g.get("query_count", 0) + 1

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)

    @app.after_request
    def _header(response: Response) -> Response:
        response.headers["X-Query-Count"] = str(g.get("query_count", 0))
        return response


def register(app: Flask) -> None:
    if app.config.get("QUERY_COUNT_HEADER"):
        _count_queries(app)
    hops = app.config.get("PROXY_FIX_HOPS", 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    if app.config["MODE"] == "production" and app.config.get("HTTPS_REDIRECT", True):
        app.before_request(_https_redirect)
    app.after_request(_security_headers)

    from monitorapp import __version__

    @app.context_processor
    def _globals() -> dict[str, Any]:
        # Mails render templates in workers too, where there is no request.
        return {"app_version": __version__, "is_htmx": has_request_context() and is_htmx()}
