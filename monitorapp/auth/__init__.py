"""Sign-up, sign-in, teams, invitations and API tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from monitorapp.auth import views  # noqa: E402,F401
