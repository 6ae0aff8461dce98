"""Who may do what: one place for role and token-scope checks.

Views use `login_required` (session or, under /api/, a bearer token), then
`require_write()` or `require_owner()` before changing anything. A stranger
never reaches these: team-owned rows are filtered by the current team, so a
foreign id is simply not found (404).
"""

from __future__ import annotations

from functools import wraps
from typing import Callable, TypeVar

from flask import abort, g
from flask_login import current_user

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


def login_required(view: F) -> F:
    """Signed in (session or bearer token) with a current team, else 401/redirect."""
    from monitorapp.auth.session import is_api_request, token_from_header, unauthorized

    @wraps(view)
    def wrapped(*args, **kwargs):
        if is_api_request() and token_from_header() is not None:
            signed_in = g.get("api_token") is not None  # a bad token never falls back to the cookie
        else:
            signed_in = current_user.is_authenticated
        if not signed_in:
            return unauthorized()
        if current_membership() is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def write_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        require_write()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def owner_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        require_owner()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
