"""`/health/` says the process answers; `/health/ready/` that it can do its job."""

from __future__ import annotations

import hmac
import time

import redis
from flask import Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitorapp.auth.access import mark
from monitorapp.extensions import csrf, db, limiter
from monitorapp.health import bp
from monitorapp.metrics import RedisCollector
from monitorapp.monitoring import stats  # noqa: F401  (the check engine's series, recorded by other processes)
from monitorapp.queues import SCHEDULER_HEARTBEAT_KEY, get_redis


@bp.get("/health/")
@limiter.exempt
@mark("public")
def liveness():
    """Touch nothing: a load balancer asks this many times a second."""
    return jsonify(status="ok")


def _check_database() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True}
    except SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        return {"ok": False, "error": "database unreachable"}


def _check_redis() -> dict:
    try:
        get_redis().ping()
        return {"ok": True}
    except (redis.RedisError, OSError) as exc:
        current_app.logger.warning("readiness: redis unavailable: %s", type(exc).__name__)
        return {"ok": False, "error": "redis unreachable"}


def _check_scheduler() -> dict:
    max_age = current_app.config["SCHEDULER_HEARTBEAT_MAX_AGE"]
    try:
        beat = get_redis().get(SCHEDULER_HEARTBEAT_KEY)
    except (redis.RedisError, OSError):
        return {"ok": False, "error": "heartbeat unreadable (redis unreachable)"}
    if beat is None:
        return {"ok": False, "error": "no scheduler heartbeat yet"}
    age = max(0.0, time.time() - float(beat))
    if age > max_age:
        return {"ok": False, "age_seconds": round(age, 1), "error": f"scheduler heartbeat older than {max_age} s"}
    return {"ok": True, "age_seconds": round(age, 1)}


@bp.get("/health/ready/")
@limiter.exempt
@mark("public")
def readiness():
    checks = {"database": _check_database(), "redis": _check_redis(), "scheduler": _check_scheduler()}
    ok = all(check["ok"] for check in checks.values())
    failing = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    if failing:
        body["failing"] = failing
    return jsonify(body), 200 if ok else 503


@bp.get("/metrics/")
@limiter.exempt
@csrf.exempt
@mark("public")  # guarded by METRICS_TOKEN, not by a session
def metrics():
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return jsonify(error="not_found", message="Metrics are off; set METRICS_TOKEN to turn them on."), 404
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = jsonify(error="unauthorized", message="Send Authorization: Bearer <METRICS_TOKEN>.")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(get_redis()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
