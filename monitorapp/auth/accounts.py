"""People: sign-up, verification, sign-in, passwords and sessions.

Views call these; each function does its work in one transaction, writes the
audit log and sends its mail. Personal events are filed in the team the
person is acting in (at sign-in: the team they land in).
"""

from __future__ import annotations

import uuid

from flask import current_app, g, request, session
from flask_login import login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from monitorapp.auth import audit, links
from monitorapp.auth.session import SESSION_TENANT_KEY, end_sign_in, new_sign_in_id, user_membership
from monitorapp.extensions import db
from monitorapp.mail import build_message, send_from_worker, send_mail
from monitorapp.models import Membership, Role, Tenant, User, utcnow
from monitorapp.tenancy import current_tenant_id, tenant_scope

# Checked against when the address is unknown, so a failed login takes as long
# whether or not the account exists.
_DUMMY_HASH = generate_password_hash("not a real password, only for timing", method="scrypt")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == normalise_email(email))).scalar_one_or_none()


def get_user(user_id: uuid.UUID) -> User | None:
    return db.session.execute(select(User).where(User.id == user_id)).scalar_one_or_none()


def home_team_id(user: User) -> uuid.UUID | None:
    membership = user_membership(user.id, None)
    return membership.tenant_id if membership else None


def register(email: str, password: str, team_name: str) -> User | None:
    """Create a user and their team, and mail a verification link.

    An address that already has an account gets a "you already have an
    account" mail instead and None comes back; the caller shows the same page
    either way, so the form does not reveal who has an account.
    """
    email = normalise_email(email)
    if find_user(email) is not None:
        # Hash anyway: answering faster than a real sign-up would reveal the account.
        generate_password_hash(password, method="scrypt")
        _mail_already_registered(email)
        return None
    user = User(email=email)
    user.set_password(password)
    team = Tenant(name=team_name.strip())
    db.session.add_all([user, team])
    try:
        db.session.flush()
    except IntegrityError:  # the same address registered a moment ago
        db.session.rollback()
        _mail_already_registered(email)
        return None
    with tenant_scope(team.id):
        db.session.add(Membership(user_id=user.id, tenant_id=team.id, role=Role.OWNER.value))
        audit.record("user.registered", target=email, actor_id=user.id, detail={"team": team.name})
        db.session.commit()
    send_verification(user)
    return user


def register_invited(email: str, password: str, invitation) -> User:
    """Create a user through an invitation: no team of their own, already verified.

    The invitation link reached this address, which proves it as well as a
    verification link would.
    """
    from monitorapp.auth.teams import accept_invitation

    user = User(email=normalise_email(email), email_verified_at=utcnow())
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    with tenant_scope(invitation.tenant_id):
        audit.record("user.registered", target=user.email, actor_id=user.id, detail={"invitation": True})
    accept_invitation(invitation, user)
    return user


def _mail_already_registered(email: str) -> None:
    send_mail(
        email,
        "already_registered",
        login_url=links.absolute_url("auth.login"),
        reset_url=links.absolute_url("auth.forgot_password"),
    )


def send_verification(user: User) -> None:
    link = links.absolute_url("auth.verify_email", token=links.verification_token(user))
    send_mail(user.email, "verify_email", link=link, hours=int(links.VERIFY_MAX_AGE.total_seconds() // 3600))


def verify_email(token: str) -> User | None:
    """Mark the address in `token` verified; None for a bad, expired or stale link."""
    data = links.read_verification_token(token)
    if data is None:
        return None
    user_id, email = data
    user = get_user(user_id)
    if user is None or user.email != email:
        return None
    if user.is_verified:  # used before: nothing to do, nothing to record
        return user
    user.email_verified_at = utcnow()
    _record_personal(user, "user.verified", target=user.email)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None (same time either way)."""
    user = find_user(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        audit.record("login.failed", target=normalise_email(email)[:254], detail={"reason": "credentials"})
        return None
    if not user.check_password(password):
        _record_personal(user, "login.failed", target=user.email, detail={"reason": "credentials"})
        db.session.commit()
        return None
    return user


def start_session(user: User, remember: bool = False, tenant_id: uuid.UUID | None = None) -> None:
    """Sign `user` in on a fresh session.

    Flask's session lives in the cookie, so "rotating the session id" means
    dropping everything the old session held (its CSRF token included) and
    signing a new cookie: a session planted before login is worthless after.
    Each sign-in gets an id of its own (session.py), so its cookies differ
    from any earlier sign-in's and signing out can revoke them.
    """
    session.clear()
    # Flask-WTF caches the token for this request in g; forget it with the session.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    login_user(user, remember=remember)
    session["_user_id"] = f"{user.get_id()}:{new_sign_in_id()}"  # the remember cookie is made from it
    if not remember and _has_remember_cookie():
        # Someone else's remember cookie (planted, or left on a shared computer) must not
        # sign this browser in as them once this session ends.
        session["_remember"] = "clear"
    tenant_id = tenant_id or home_team_id(user)
    if tenant_id is not None:
        session[SESSION_TENANT_KEY] = str(tenant_id)


def log_in(user: User, remember: bool) -> None:
    start_session(user, remember)
    user.last_login_at = utcnow()
    _record_personal(user, "login.succeeded", target=user.email, detail={"remember": remember})
    db.session.commit()


def log_out(user: User) -> None:
    _record_personal(user, "logout", target=user.email)
    if not end_sign_in(session.get("_user_id")):
        # Redis could not record the end of this sign-in: end all of them rather than
        # leave copies of this one's cookies working.
        user.session_version += 1
    db.session.commit()
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    logout_user()  # after clearing: it leaves the note that deletes the remember cookie


def _end_other_sessions(user: User) -> None:
    """Bump the session version (every other session and remember cookie dies), keep this one."""
    user.session_version += 1
    db.session.flush()
    had_remember_cookie = _has_remember_cookie()
    tenant_id = current_tenant_id()
    start_session(user, remember=had_remember_cookie, tenant_id=tenant_id)


def _has_remember_cookie() -> bool:
    return current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies


def change_password(user: User, new_password: str) -> None:
    user.set_password(new_password)
    _end_other_sessions(user)
    audit.record("password.changed", target=user.email)
    db.session.commit()
    send_mail(user.email, "password_changed", reset_url=links.absolute_url("auth.forgot_password"))


def sign_out_everywhere(user: User) -> None:
    _end_other_sessions(user)
    audit.record("sessions.revoked", target=user.email)
    db.session.commit()


def request_email_change(user: User, new_email: str) -> None:
    """Mail a confirmation link to the new address; nothing changes until it is opened.

    If the new address already has an account, that address is told so
    instead, and the person asking sees the same answer either way.
    """
    new_email = normalise_email(new_email)
    if find_user(new_email) is not None:
        _mail_already_registered(new_email)
        return
    link = links.absolute_url("auth.confirm_email_change", token=links.email_change_token(user, new_email))
    send_mail(new_email, "confirm_email_change", link=link, old_email=user.email)


def confirm_email_change(token: str) -> User | None:
    """Switch the address named in `token`; None for a bad, expired, used or taken one."""
    data = links.read_email_change_token(token)
    if data is None:
        return None
    user_id, old_email, new_email = data
    user = get_user(user_id)
    if user is None or user.email != old_email or find_user(new_email) is not None:
        return None
    user.email = new_email
    user.email_verified_at = utcnow()  # the link reached the new address
    _record_personal(user, "email.changed", target=new_email, detail={"from": old_email})
    try:
        db.session.commit()
    except IntegrityError:  # taken a moment ago
        db.session.rollback()
        return None
    send_mail(old_email, "email_changed", new_email=new_email, reset_url=links.absolute_url("auth.forgot_password"))
    return user


def send_password_reset(email: str) -> None:
    """Mail a reset link if the address has an account; silently nothing otherwise.

    Either way the same work is done, up to queuing a job, and a worker talks to
    the mail server: how long the answer takes does not tell who has an account.
    """
    user = find_user(email)
    # For an unknown address, a stand-in that is never stored: its mail costs the same to make.
    target = user or User(id=uuid.uuid4(), email=normalise_email(email), password_hash=_DUMMY_HASH, session_version=1)
    link = links.absolute_url("auth.reset_password", token=links.reset_token(target))
    minutes = int(links.RESET_MAX_AGE.total_seconds() // 60)
    message = build_message(target.email, "reset_password", link=link, minutes=minutes)
    send_from_worker(message, decoy=user is None)


def user_for_reset(token: str) -> User | None:
    """The user a reset link is for, while the link is fresh and unused."""
    data = links.read_reset_token(token)
    if data is None:
        return None
    user = get_user(data[0])
    if user is None or not links.reset_token_matches(user, data[1]):
        return None
    return user


def reset_password(user: User, new_password: str) -> None:
    """Set a new password from a reset link: every session ends, this one signs in."""
    user.set_password(new_password)
    user.session_version += 1
    # Opening the link proved the mailbox, so the address counts as verified.
    user.email_verified_at = user.email_verified_at or utcnow()
    start_session(user)
    _record_personal(user, "password.reset", target=user.email)
    db.session.commit()
    send_mail(user.email, "password_changed", reset_url=links.absolute_url("auth.forgot_password"))


def _record_personal(user: User, action: str, **fields) -> None:
    """Audit an event about `user` in their current team (or home team when signed out)."""
    tenant_id = current_tenant_id() or home_team_id(user)
    if tenant_id is None:
        audit.record(action, actor_id=user.id, **fields)
        return
    with tenant_scope(tenant_id):
        audit.record(action, actor_id=user.id, tenant_id=tenant_id, **fields)
        db.session.flush()
