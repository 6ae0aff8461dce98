"""The home page and the endpoints dashboard."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from monitorapp.dashboard import views  # noqa: E402,F401
