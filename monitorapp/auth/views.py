"""Sign-up, sign-in, passwords, the account page, teams, invitations and tokens.

Every view carries its access rule (see access.py): `public`, `account`,
`login`, `write` or `owner`. Views parse the form, call accounts/teams/tokens,
and render or redirect (POST-redirect-GET; 422 with the form on errors).
"""

from __future__ import annotations

import uuid

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user

from monitorapp.auth import accounts, audit, bp, teams, tokens
from monitorapp.auth.access import (
    account_required,
    current_membership,
    is_owner,
    login_required,
    mark,
    owner_required,
)
from monitorapp.auth.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    DeleteTeamForm,
    ForgotPasswordForm,
    InviteForm,
    JoinForm,
    LoginForm,
    RegisterForm,
    ResetPasswordForm,
    RoleForm,
    SwitchTeamForm,
    TeamNameForm,
    TokenForm,
)
from monitorapp.auth.session import SESSION_TENANT_KEY, safe_next, user_membership, user_memberships
from monitorapp.extensions import limiter
from monitorapp.models import Role, TokenScope
from monitorapp.web import render

AUDIT_PAGE_SIZE = 50

# Default limits; the environment variable of the same name overrides each (config.py).
LIMITS = {
    "RATELIMIT_LOGIN_IP": "20 per minute;200 per hour",
    "RATELIMIT_LOGIN_ACCOUNT": "5 per minute;20 per hour",
    "RATELIMIT_REGISTER": "10 per hour",
    "RATELIMIT_PASSWORD_RESET": "5 per hour",
    "RATELIMIT_VERIFY_RESEND": "3 per hour",
    "RATELIMIT_INVITE": "30 per hour",
}


def _limit(name: str):
    return lambda: current_app.config.get(name) or LIMITS[name]


def _account_key() -> str:
    """The rate-limit key for "per account": the address typed into the form."""
    return "account:" + accounts.normalise_email(request.form.get("email", ""))


def _user_key() -> str:
    return f"user:{current_user.get_id().split(':')[0]}" if current_user.is_authenticated else request.remote_addr


def _failed(response) -> bool:
    return response.status_code == 422


def _redirected(response) -> bool:
    return response.status_code == 303


def _me():
    return current_user._get_current_object()


# -- sign-up and verification ----------------------------------------------


@bp.route("/register", methods=["GET", "POST"])
@mark("public")
@limiter.limit(_limit("RATELIMIT_REGISTER"), methods=["POST"])
# Per address typed too: each sign-up with a taken address mails its owner.
@limiter.limit(_limit("RATELIMIT_REGISTER"), key_func=_account_key, methods=["POST"])
def register():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("dashboard.index"))
    form = RegisterForm()
    if not form.validate_on_submit():
        return render("auth/register.html", form=form, status=422 if request.method == "POST" else 200)
    accounts.register(form.email.data, form.password.data, form.team_name.data)
    return redirect(url_for("auth.check_email"), code=303)


@bp.get("/register/check-email")
@mark("public")
def check_email():
    return render("auth/check_email.html")


@bp.get("/verify/<token>")
@mark("public")
def verify_email(token: str):
    user = accounts.verify_email(token)
    if user is None:
        return render("auth/link_invalid.html", what="verification", status=400)
    flash("Your email address is verified.", "success")
    return redirect(url_for("dashboard.index" if current_user.is_authenticated else "auth.login"), code=303)


@bp.post("/verify/resend")
@account_required
@limiter.limit(_limit("RATELIMIT_VERIFY_RESEND"), key_func=_user_key)
def resend_verification():
    if current_user.is_verified:
        flash("Your email address is already verified.", "info")
    else:
        accounts.send_verification(_me())
        flash(f"We sent a new verification link to {current_user.email}.", "success")
    return redirect(safe_next(request.form.get("next")) or url_for("dashboard.index"), code=303)


# -- sign-in and sign-out ----------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@mark("public")
@limiter.limit(_limit("RATELIMIT_LOGIN_IP"), methods=["POST"])
@limiter.limit(
    _limit("RATELIMIT_LOGIN_ACCOUNT"),
    key_func=_account_key,
    methods=["POST"],
    # Only failed attempts count, so signing in often never locks anyone out.
    deduct_when=lambda response: response.status_code == 422,
)
def login():
    next_url = safe_next(request.args.get("next")) or url_for("dashboard.index")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    form = LoginForm()
    if not form.validate_on_submit():
        return render("auth/login.html", form=form, next=next_url, status=422 if request.method == "POST" else 200)
    user = accounts.authenticate(form.email.data, form.password.data)
    if user is None:
        form.form_errors.append("That email and password do not match an account.")
        return render("auth/login.html", form=form, next=next_url, status=422)
    accounts.log_in(user, remember=form.remember.data)
    return redirect(next_url, code=303)


@bp.post("/logout")
@mark("public")
def logout():
    if current_user.is_authenticated:
        accounts.log_out(_me())
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


# -- password reset ------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
@mark("public")
@limiter.limit(_limit("RATELIMIT_PASSWORD_RESET"), methods=["POST"])
@limiter.limit(_limit("RATELIMIT_PASSWORD_RESET"), key_func=_account_key, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render("auth/forgot_password.html", form=form, status=422 if request.method == "POST" else 200)
    accounts.send_password_reset(form.email.data)
    return render("auth/forgot_password_sent.html", email=form.email.data)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@mark("public")
def reset_password(token: str):
    user = accounts.user_for_reset(token)
    if user is None:
        return render("auth/link_invalid.html", what="password reset", status=400)
    form = ResetPasswordForm(user.email)
    if not form.validate_on_submit():
        return render("auth/reset_password.html", form=form, status=422 if request.method == "POST" else 200)
    accounts.reset_password(user, form.password.data)
    flash("Your password is changed, and every other session is signed out.", "success")
    return redirect(url_for("dashboard.index"), code=303)


# -- the account page ---------------------------------------------------------


def _account_page(status: int = 200, **forms):
    context = {
        "password_form": ChangePasswordForm(current_user.email),
        "email_form": ChangeEmailForm(formdata=None),
        "token_form": TokenForm(),
        "tokens": tokens.user_tokens(current_user.id),
        "memberships": user_memberships(current_user.id),
        "can_write_tokens": current_membership().role_enum.can_write,
        "new_secret": None,
    }
    context.update(forms)
    return render("account/index.html", status=status, **context)


@bp.get("/account")
@login_required
def account():
    return _account_page()


@bp.post("/account/password")
@login_required
# A borrowed session must not be a way to guess the current password.
@limiter.limit(_limit("RATELIMIT_LOGIN_ACCOUNT"), key_func=_user_key, deduct_when=_failed)
def change_password():
    form = ChangePasswordForm(current_user.email)
    if not form.validate_on_submit():
        return _account_page(422, password_form=form)
    if not current_user.check_password(form.current_password.data):
        form.current_password.errors = ["That is not your current password."]
        return _account_page(422, password_form=form)
    accounts.change_password(_me(), form.password.data)
    flash("Your password is changed, and every other session is signed out.", "success")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/email")
@login_required
@limiter.limit(_limit("RATELIMIT_LOGIN_ACCOUNT"), key_func=_user_key, deduct_when=_failed)
# Each request mails the address typed in, whoever's it is.
@limiter.limit(_limit("RATELIMIT_VERIFY_RESEND"), key_func=_user_key, deduct_when=_redirected)
def change_email():
    form = ChangeEmailForm()
    if not form.validate_on_submit():
        return _account_page(422, email_form=form)
    if not current_user.check_password(form.password_check.data):
        form.password_check.errors = ["That is not your current password."]
        return _account_page(422, email_form=form)
    accounts.request_email_change(_me(), form.email.data)
    flash(f"We sent a link to {form.email.data}. Your address changes when you open it.", "success")
    return redirect(url_for("auth.account"), code=303)


@bp.get("/account/email/confirm/<token>")
@mark("public")
def confirm_email_change(token: str):
    user = accounts.confirm_email_change(token)
    if user is None:
        return render("auth/link_invalid.html", what="address change", status=400)
    flash(f"Your email address is now {user.email}.", "success")
    return redirect(url_for("auth.account" if current_user.is_authenticated else "auth.login"), code=303)


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    accounts.sign_out_everywhere(_me())
    flash("Every other session of yours is signed out.", "success")
    return redirect(url_for("auth.account"), code=303)


# -- API tokens -----------------------------------------------------------------


def _own_token(token_id: uuid.UUID):
    token = tokens.get_user_token(current_user.id, token_id)
    if token is None:
        abort(404)
    return token


@bp.post("/account/tokens")
@login_required
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(422, token_form=form)
    scope = TokenScope(form.scope.data)
    if scope is TokenScope.WRITE and not current_membership().role_enum.can_write:
        abort(403)  # a viewer's token can only read
    token, secret = tokens.create_token(current_user.id, form.name.data, scope)
    # Shown once, on this response only; never stored in the clear.
    return _account_page(new_secret=secret, new_token=token)


@bp.post("/account/tokens/<uuid:token_id>/revoke")
@login_required
def revoke_token(token_id: uuid.UUID):
    token = _own_token(token_id)
    tokens.revoke_token(token)
    flash(f"Token {token.name} ({token.prefix}…) is revoked.", "success")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/tokens/<uuid:token_id>/rotate")
@login_required
def rotate_token(token_id: uuid.UUID):
    token = _own_token(token_id)
    secret = tokens.rotate_token(token)
    return _account_page(new_secret=secret, new_token=token)


# -- teams ------------------------------------------------------------------------


@bp.route("/teams/new", methods=["GET", "POST"])
@account_required
def new_team():
    form = TeamNameForm()
    if not form.validate_on_submit():
        return render("team/new.html", form=form, status=422 if request.method == "POST" else 200)
    team = teams.create_team(_me(), form.name.data)
    session[SESSION_TENANT_KEY] = str(team.id)
    flash(f"Team {team.name} is created.", "success")
    return redirect(url_for("dashboard.index"), code=303)


@bp.post("/teams/switch")
@account_required
def switch_team():
    form = SwitchTeamForm()
    try:
        team_id = uuid.UUID(form.team_id.data or "")
    except ValueError:
        abort(404)
    if user_membership(current_user.id, team_id) is None:
        abort(404)
    session[SESSION_TENANT_KEY] = str(team_id)
    return redirect(safe_next(request.form.get("next")) or url_for("dashboard.index"), code=303)


def _team_page(status: int = 200, **forms):
    context = {
        "team": teams.current_team(),
        "members": teams.members(),
        "invitations": teams.pending_invitations() if is_owner() else [],
        "is_owner": is_owner(),
        "me": current_membership(),
        "rename_form": TeamNameForm(name=teams.current_team().name),
        "invite_form": InviteForm(),
        "delete_form": DeleteTeamForm(),
        "role_form": RoleForm(),
    }
    context.update(forms)
    return render("team/settings.html", status=status, **context)


@bp.get("/team")
@login_required
def team_settings():
    return _team_page()


@bp.post("/team/rename")
@owner_required
def rename_team():
    form = TeamNameForm()
    if not form.validate_on_submit():
        return _team_page(422, rename_form=form)
    teams.rename(form.name.data)
    flash("The team is renamed.", "success")
    return redirect(url_for("auth.team_settings"), code=303)


@bp.post("/team/invitations")
@owner_required
@limiter.limit(_limit("RATELIMIT_INVITE"), key_func=_user_key)
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _team_page(422, invite_form=form)
    try:
        teams.invite(form.email.data, Role(form.role.data), _me())
    except teams.TeamError as error:
        form.email.errors = [str(error)]
        return _team_page(422, invite_form=form)
    flash(f"Invitation sent to {form.email.data}.", "success")
    return redirect(url_for("auth.team_settings"), code=303)


@bp.post("/team/invitations/<uuid:invitation_id>/revoke")
@owner_required
def revoke_invitation(invitation_id: uuid.UUID):
    invitation = teams.get_invitation(invitation_id)
    if invitation is None:
        abort(404)
    teams.revoke_invitation(invitation)
    flash(f"The invitation to {invitation.email} is withdrawn.", "success")
    return redirect(url_for("auth.team_settings"), code=303)


def _member(membership_id: uuid.UUID):
    membership = teams.get_member(membership_id)
    if membership is None:
        abort(404)
    return membership


@bp.post("/team/members/<uuid:membership_id>/role")
@owner_required
def change_role(membership_id: uuid.UUID):
    membership = _member(membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _team_page(422, role_form=form)
    try:
        teams.change_role(membership, Role(form.role.data))
    except teams.TeamError as error:
        flash(str(error), "error")
        return _team_page(422)
    flash(f"{membership.user.email} is now {form.role.data}.", "success")
    return redirect(url_for("auth.team_settings"), code=303)


@bp.post("/team/members/<uuid:membership_id>/remove")
@owner_required
def remove_member(membership_id: uuid.UUID):
    membership = _member(membership_id)
    email = membership.user.email
    try:
        teams.remove_member(membership)
    except teams.TeamError as error:
        flash(str(error), "error")
        return _team_page(422)
    flash(f"{email} is removed from the team.", "success")
    return redirect(url_for("auth.team_settings"), code=303)


@bp.post("/team/delete")
@owner_required
def delete_team():
    form = DeleteTeamForm()
    team = teams.current_team()
    if not form.validate_on_submit() or form.confirm.data.strip() != team.name:
        form.confirm.errors = ["Type the team's name exactly to delete it."]
        return _team_page(422, delete_form=form)
    name = team.name
    teams.delete_team()
    session.pop(SESSION_TENANT_KEY, None)
    g.membership = None  # the page that follows must not reach for the deleted team
    flash(f"Team {name} and everything in it is deleted.", "success")
    return redirect(url_for("dashboard.index"), code=303)


@bp.get("/team/audit")
@owner_required
def audit_log():
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    events, total = audit.page_of_events(page, AUDIT_PAGE_SIZE)
    pages = max((total + AUDIT_PAGE_SIZE - 1) // AUDIT_PAGE_SIZE, 1)
    return render("team/audit.html", block="audit_table", events=events, page=page, pages=pages, total=total)


# -- invitations, from the link in the mail ---------------------------------------


def _open_invitation(token: str):
    invitation = teams.invitation_from_link(token)
    if invitation is None:
        return None, render("auth/link_invalid.html", what="invitation", status=400)
    return invitation, None


@bp.get("/invitations/<token>")
@mark("public")
def invitation(token: str):
    invitation, error = _open_invitation(token)
    if error:
        return error
    has_account = accounts.find_user(invitation.email) is not None
    return render(
        "team/invitation.html",
        invitation=invitation,
        team_name=teams.team_name(invitation.tenant_id),
        token=token,
        has_account=has_account,
        join_form=JoinForm(invitation.email),
    )


@bp.post("/invitations/<token>")
@account_required
def accept_invitation(token: str):
    invitation, error = _open_invitation(token)
    if error:
        return error
    if accounts.normalise_email(current_user.email) != invitation.email:
        abort(403)  # the link was sent to another address
    teams.accept_invitation(invitation, _me())
    session[SESSION_TENANT_KEY] = str(invitation.tenant_id)
    flash(f"Welcome to {teams.team_name(invitation.tenant_id)}.", "success")
    return redirect(url_for("dashboard.index"), code=303)


@bp.post("/invitations/<token>/join")
@mark("public")
@limiter.limit(_limit("RATELIMIT_REGISTER"))
def join(token: str):
    invitation, error = _open_invitation(token)
    if error:
        return error
    form = JoinForm(invitation.email)
    context = {"invitation": invitation, "team_name": teams.team_name(invitation.tenant_id), "token": token}
    if accounts.find_user(invitation.email) is not None:
        return render("team/invitation.html", has_account=True, join_form=form, status=422, **context)
    if not form.validate_on_submit():
        return render("team/invitation.html", has_account=False, join_form=form, status=422, **context)
    user = accounts.register_invited(invitation.email, form.password.data, invitation)
    accounts.start_session(user, tenant_id=invitation.tenant_id)
    flash(f"Welcome to {context['team_name']}.", "success")
    return redirect(url_for("dashboard.index"), code=303)


# -- what every page's navigation needs --------------------------------------------


@bp.app_context_processor
def _navigation() -> dict:
    def nav_teams():
        if not current_user.is_authenticated:
            return []
        if "memberships" in g:  # loaded when the request's team was resolved
            return g.memberships
        return user_memberships(current_user.id)

    membership = g.get("membership")
    return {
        "nav_teams": nav_teams,
        "current_team_id": membership.tenant_id if membership else None,
        "current_team_name": membership.tenant.name if membership else None,
    }
