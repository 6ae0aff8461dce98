"""Liveness, readiness and Prometheus metrics."""

from flask import Blueprint

bp = Blueprint("health", __name__)

from monitorapp.health import views  # noqa: E402,F401
