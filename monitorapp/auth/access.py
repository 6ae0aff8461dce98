"""Who may do what: one place for role and token-scope checks.

Views use `login_required` (session or, under /api/, a bearer token), then
`require_write()` or `require_owner()` before changing anything. A stranger
never reaches these: team-owned rows are filtered by the current team, so a
foreign id is simply not found (404). Adding endpoints also needs a verified
email address (`require_verified()` / `verified_required`).

Each decorator leaves `access_rule` on the view ("public", "account",
"login", "write", "owner") so a test can walk `app.url_map` and know what to
expect of every route:

- public: anyone;
- account: signed in with a session, any role, no team needed (own account);
- login: signed in, any role in the current team (viewers included);
- write: owner or member (and a read-write token);
- owner: owners only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, g, redirect, url_for
from flask_login import current_user
from werkzeug.exceptions import Forbidden

from monitorapp.models import Membership, Role, TokenScope

F = TypeVar("F", bound=Callable)


def current_membership() -> Membership | None:
    return g.get("membership")


def current_role() -> Role | None:
    membership = current_membership()
    return membership.role_enum if membership is not None else None


def is_authenticated() -> bool:
    return current_membership() is not None and (g.get("api_token") is not None or current_user.is_authenticated)


def can_write() -> bool:
    role = current_role()
    if role is None or not role.can_write:
        return False
    token = g.get("api_token")
    return token is None or token.scope == TokenScope.WRITE.value


def is_owner() -> bool:
    role = current_role()
    return role is not None and role.can_manage and g.get("api_token") is None


def require_write() -> None:
    if not can_write():
        abort(403)


def require_owner() -> None:
    if not is_owner():
        abort(403)


def is_verified() -> bool:
    """True if the person acting (session or token owner) has verified their email."""
    token = g.get("api_token")
    user = token.user if token is not None else current_user
    return bool(user and user.is_authenticated and user.is_verified)


def require_verified() -> None:
    if not is_verified():
        error = Forbidden("Verify your email address first: use the link we sent you.")
        error._monitorapp_message = True  # shown to the user (see errors.py)
        raise error


def mark(rule: str) -> Callable[[F], F]:
    """Label a view with its access rule (see the module docstring)."""

    def decorate(view: F) -> F:
        view.access_rule = rule  # type: ignore[attr-defined]
        return view

    return decorate


def account_required(view: F) -> F:
    """Signed in with a session; no team needed (the person's own account)."""
    from monitorapp.auth.session import unauthorized

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return unauthorized()
        return view(*args, **kwargs)

    return mark("account")(wrapped)  # type: ignore[return-value]


def login_required(view: F) -> F:
    """Signed in (session or bearer token) with a current team, else 401/redirect."""
    from monitorapp.auth.session import is_api_request, token_from_header, unauthorized
    from monitorapp.web import is_htmx

    @wraps(view)
    def wrapped(*args, **kwargs):
        if is_api_request() and token_from_header() is not None:
            signed_in = g.get("api_token") is not None  # a bad token never falls back to the cookie
        else:
            signed_in = current_user.is_authenticated
        if not signed_in:
            return unauthorized()
        if current_membership() is None:
            if not is_api_request() and not is_htmx():
                # Signed in but in no team (their last team was deleted): make one.
                return redirect(url_for("auth.new_team"))
            abort(403)
        return view(*args, **kwargs)

    return mark("login")(wrapped)  # type: ignore[return-value]


def write_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        require_write()
        return view(*args, **kwargs)

    return mark("write")(wrapped)  # type: ignore[return-value]


def verified_required(view: F) -> F:
    """Like `write_required`, and the person's email must be verified."""

    @wraps(view)
    @write_required
    def wrapped(*args, **kwargs):
        require_verified()
        return view(*args, **kwargs)

    return mark("write")(wrapped)  # type: ignore[return-value]


def owner_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        require_owner()
        return view(*args, **kwargs)

    return mark("owner")(wrapped)  # type: ignore[return-value]
