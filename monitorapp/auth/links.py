"""Signed, expiring, single-use links: email verification, password reset, invitations.

Each link is an itsdangerous token signed with SECRET_KEY and a per-purpose
salt, so a token made for one purpose is refused for another. Single use
comes from what the token binds to: a verification link names the address
(a verified account ignores it), an address-change link names the old
address (once changed, it no longer matches), a reset link carries a fingerprint of the
current password hash, session version and address (a new password, "sign out
everywhere" or a new address kills it), an invitation link names a row that is
marked accepted.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from flask import current_app, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from monitorapp.models import User

VERIFY_MAX_AGE = timedelta(hours=24)
RESET_MAX_AGE = timedelta(hours=1)
INVITATION_MAX_AGE = timedelta(days=7)


def absolute_url(endpoint: str, **values) -> str:
    """A link for a mail, on BASE_URL: never built from the request's Host header,
    which an attacker could set to get a reset link pointing at their server."""
    return current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint, **values)


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"monitorapp.{purpose}")


def _load(purpose: str, token: str, max_age: timedelta):
    try:
        return _serializer(purpose).loads(token, max_age=int(max_age.total_seconds()))
    except BadSignature:  # includes SignatureExpired
        return None


def _password_fingerprint(user: User) -> str:
    # The address too: a link mailed to an address the account has left must not take it back.
    state = f"{user.password_hash}:{user.session_version}:{user.email}"
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def verification_token(user: User) -> str:
    return _serializer("verify").dumps({"user": str(user.id), "email": user.email})


def read_verification_token(token: str) -> tuple[uuid.UUID, str] | None:
    """(user id, email) from a valid verification token, else None."""
    data = _load("verify", token, VERIFY_MAX_AGE)
    try:
        return uuid.UUID(data["user"]), data["email"]
    except (TypeError, KeyError, ValueError):
        return None


def reset_token(user: User) -> str:
    return _serializer("reset").dumps({"user": str(user.id), "fp": _password_fingerprint(user)})


def read_reset_token(token: str) -> tuple[uuid.UUID, str] | None:
    """(user id, password fingerprint) from a valid reset token, else None."""
    data = _load("reset", token, RESET_MAX_AGE)
    try:
        return uuid.UUID(data["user"]), data["fp"]
    except (TypeError, KeyError, ValueError):
        return None


def reset_token_matches(user: User, fingerprint: str) -> bool:
    """False once the password, session version or address changed since the link was made."""
    return _password_fingerprint(user) == fingerprint


def email_change_token(user: User, new_email: str) -> str:
    return _serializer("email-change").dumps({"user": str(user.id), "old": user.email, "new": new_email})


def read_email_change_token(token: str) -> tuple[uuid.UUID, str, str] | None:
    """(user id, old address, new address) from a valid address-change token, else None."""
    data = _load("email-change", token, VERIFY_MAX_AGE)
    try:
        return uuid.UUID(data["user"]), data["old"], data["new"]
    except (TypeError, KeyError, ValueError):
        return None


def invitation_token(invitation_id: uuid.UUID) -> str:
    return _serializer("invite").dumps(str(invitation_id))


def read_invitation_token(token: str) -> uuid.UUID | None:
    data = _load("invite", token, INVITATION_MAX_AGE)
    try:
        return uuid.UUID(data)
    except (TypeError, ValueError):
        return None
