"""Incidents, notification channels and the endpoint page."""

from flask import Blueprint

bp = Blueprint("alerts", __name__)

from monitorapp.alerts import views  # noqa: E402,F401
