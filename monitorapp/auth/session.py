"""Who is asking, and for which team: sessions, bearer tokens, the current team.

Flask-Login keeps `"<user id>:<session version>:<sign-in id>"` in the session
and the remember cookie. A password change or "sign out everywhere" bumps the
version and every older session stops loading. Signing out revokes the
sign-in id (in Redis), so a copy of either cookie dies with it, while the
person's other devices stay signed in; the id also dates the sign-in, which
lasts at most REMEMBER_DAYS however busy it is kept. API requests
authenticate with `Authorization: Bearer <token>` instead; such requests
carry no cookie and are exempt from CSRF.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user
from redis import RedisError
from sqlalchemy import select

from monitorapp.extensions import csrf, db, login_manager
from monitorapp.models import ApiToken, Membership, User, utcnow
from monitorapp.queues import get_redis
from monitorapp.tenancy import set_current_tenant, system_scope
from monitorapp.web import htmx_redirect, is_htmx

TOKEN_PREFIX = "mon_"  # noqa: S105 (a marker, not a secret)
SESSION_TENANT_KEY = "tenant_id"
REVOKED_SIGN_IN_KEY = "monitorapp:signed-out:"

log = logging.getLogger("monitorapp.auth")


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path inside this app, else None (no open redirects)."""
    if not target:
        return None
    target = target.strip()
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def new_sign_in_id() -> str:
    """A fresh id for one sign-in: when it began, and a random part."""
    return f"{int(time.time())}.{secrets.token_urlsafe(12)}"


def _sign_in_lifetime() -> float:
    config = current_app.config
    return max(config["REMEMBER_COOKIE_DURATION"], config["PERMANENT_SESSION_LIFETIME"]).total_seconds()


def sign_in_ended(sign_in_id: str) -> bool:
    """True once the sign-in is older than its lifetime or was signed out."""
    try:
        age = time.time() - int(sign_in_id.split(".", 1)[0])
    except ValueError:
        return True
    if age > _sign_in_lifetime():
        return True
    try:
        return bool(get_redis().exists(REVOKED_SIGN_IN_KEY + sign_in_id))
    except (RedisError, OSError):
        # A dead Redis must not sign everyone out; it only lets a stolen, signed-out cookie live on meanwhile.
        log.warning("cannot check whether a sign-in was signed out: Redis is unreachable")
        return False


def end_sign_in(user_id: str | None) -> bool:
    """Revoke the sign-in named in a session's user id; False if that could not be recorded."""
    sign_in_id = (user_id or "").split(":")[2:3]
    if not sign_in_id:
        return True  # made before sign-in ids existed: nothing to revoke one by one
    try:
        # Kept as long as a copy of its cookies could otherwise still be used.
        get_redis().set(REVOKED_SIGN_IN_KEY + sign_in_id[0], 1, ex=int(_sign_in_lifetime()) + 60)
    except (RedisError, OSError):
        return False
    return True


def load_user(user_id: str) -> User | None:
    try:
        raw_id, raw_version, *sign_in = user_id.split(":")
        uid, version = uuid.UUID(raw_id), int(raw_version)
    except (ValueError, AttributeError):
        return None
    if len(sign_in) > 1 or (sign_in and sign_in_ended(sign_in[0])):
        return None
    # The user and all their teams in one query (each membership joins its user):
    # every page needs both, and a query less is a millisecond less (bench/web.py).
    memberships = user_memberships(uid)
    user = memberships[0].user if memberships else db.session.get(User, uid)
    if user is None or user.session_version != version:
        return None
    g.memberships_of = (user.id, memberships)
    return user


def token_from_header() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate_bearer() -> ApiToken | None:
    """The live token named by the Authorization header, or None."""
    secret = token_from_header()
    if secret is None or not secret.startswith(TOKEN_PREFIX):
        return None
    token = db.session.execute(
        select(ApiToken)
        .where(ApiToken.token_hash == ApiToken.hash_secret(secret), ApiToken.revoked_at.is_(None))
        .execution_options(system_scope=True)  # the token itself names its team
    ).scalar_one_or_none()
    if token is None:
        return None
    membership = user_membership(token.user_id, token.tenant_id)
    if membership is None:  # removed from the team: the token dies with the membership
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        # Written at most once a minute so a busy client does not write on every call.
        with system_scope():  # no team is current yet; the token names its own
            token.last_used_at = now
            db.session.commit()
    g.api_token = token
    g.membership = membership
    return token


def user_membership(user_id: uuid.UUID, tenant_id: uuid.UUID | None) -> Membership | None:
    query = select(Membership).where(Membership.user_id == user_id)
    if tenant_id is not None:
        query = query.where(Membership.tenant_id == tenant_id)
    query = query.order_by(Membership.created_at).limit(1)
    # A user's own memberships span teams; they are filtered by user instead.
    return db.session.execute(query.execution_options(system_scope=True)).scalar_one_or_none()


def user_memberships(user_id: uuid.UUID) -> list[Membership]:
    query = select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
    return list(db.session.execute(query.execution_options(system_scope=True)).scalars())


def _resolve_request_identity() -> None:
    """Set the current user's membership and team for this request."""
    g.membership = None
    g.api_token = None
    set_current_tenant(None)
    # Health and metrics need nobody's identity: a signed-in browser asking them
    # must not touch the database (readiness would answer 500 instead of 503 when it is down).
    if request.endpoint == "static" or request.blueprint == "health":
        return
    if is_api_request() and token_from_header() is not None:
        token = authenticate_bearer()
        if token is not None:
            set_current_tenant(token.tenant_id)
        return
    if not current_user.is_authenticated:
        return
    wanted = session.get(SESSION_TENANT_KEY)
    try:
        wanted_id = uuid.UUID(wanted) if wanted else None
    except ValueError:
        wanted_id = None
    # All of the user's teams, loaded with the user (load_user): the navigation's
    # team switcher needs them too.
    user_id, memberships = g.get("memberships_of") or (None, None)
    g.memberships = memberships if user_id == current_user.id else user_memberships(current_user.id)
    membership = next((m for m in g.memberships if m.tenant_id == wanted_id), None)
    if membership is None and g.memberships:
        membership = g.memberships[0]
    if membership is not None:
        if wanted_id != membership.tenant_id:  # unchanged, the session cookie is not sent again
            session[SESSION_TENANT_KEY] = str(membership.tenant_id)
        set_current_tenant(membership.tenant_id)
    g.membership = membership


def unauthorized():
    """Not signed in: JSON 401 for the API, HX-Redirect for htmx, else a redirect."""
    if is_api_request():
        response = jsonify(error="unauthorized", message="Authentication required: send Authorization: Bearer <token>.")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="monitorapp"'
        return response
    if is_htmx():
        current = request.headers.get("HX-Current-URL", "")
        parts = urlsplit(current)
        page = parts.path + (f"?{parts.query}" if parts.query else "") if parts.path else request.full_path
        return htmx_redirect(url_for("auth.login", next=safe_next(page) or "/"))
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=safe_next(target) or "/"))


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.before_request(_protect_from_csrf)
    app.before_request(_resolve_request_identity)


def _protect_from_csrf() -> None:
    """CSRF on every state-changing request, except bearer-token API calls.

    A browser never attaches an Authorization header cross-site by itself, so a
    bearer request cannot be forged; a cookie-authenticated one can.
    """
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE") or request.routing_exception is not None:
        return  # a 404/405 is answered as such, not as a CSRF failure
    if is_api_request() and token_from_header() is not None:
        return
    if not current_user.is_authenticated and _access_rule() != "public":
        # Nothing to forge without a session: the view answers 401 (API) or sends the
        # visitor to sign in (HX-Redirect for htmx), instead of a CSRF error for an
        # htmx POST whose session has expired.
        return
    csrf.protect()


def _access_rule() -> str | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "access_rule", None)
