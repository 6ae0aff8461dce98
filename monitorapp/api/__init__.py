"""The JSON API under /api/."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from monitorapp.api import views  # noqa: E402,F401
