"""Liveness, readiness and metrics."""

from __future__ import annotations

import time

from monitorapp import metrics
from monitorapp.queues import SCHEDULER_HEARTBEAT_KEY


def test_liveness_answers_json(client):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_liveness_touches_nothing(make_app):
    # Even with the database and Redis unreachable, the process is alive.
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none", REDIS_URL="redis://127.0.0.1:1/0")
    assert app.test_client().get("/health/").status_code == 200


def test_readiness_is_ok_with_database_redis_and_a_fresh_heartbeat(client, redis_client):
    redis_client.set(SCHEDULER_HEARTBEAT_KEY, time.time())
    response = client.get("/health/ready/")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {"database", "redis", "scheduler"}


def test_readiness_names_a_missing_scheduler(client):
    response = client.get("/health/ready/")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["scheduler"]


def test_readiness_names_a_stale_scheduler(client, redis_client):
    redis_client.set(SCHEDULER_HEARTBEAT_KEY, time.time() - 3600)
    body = client.get("/health/ready/").get_json()
    assert body["failing"] == ["scheduler"]
    assert body["checks"]["scheduler"]["age_seconds"] >= 3599


def test_readiness_names_an_unreachable_redis(make_app, app):
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = broken.test_client().get("/health/ready/")
    assert response.status_code == 503
    body = response.get_json()
    assert "redis" in body["failing"]
    assert body["checks"]["database"]["ok"] is True


def test_readiness_names_an_unreachable_database(make_app, redis_client):
    redis_client.set(SCHEDULER_HEARTBEAT_KEY, time.time())
    broken = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = broken.test_client().get("/health/ready/")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["database"]
    assert "nobody" not in response.get_data(as_text=True)


def test_metrics_are_off_without_a_token(client):
    assert client.get("/metrics/").status_code == 404


def test_metrics_require_the_bearer_token(make_app):
    app = make_app(METRICS_TOKEN="m" * 32)
    client = app.test_client()
    assert client.get("/metrics/").status_code == 401
    assert client.get("/metrics/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics/", headers={"Authorization": "Bearer " + "m" * 32})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"


def test_metrics_from_another_process_reach_the_web(make_app, app):
    # A worker process (here: a second app instance, as a worker builds its own)
    # records; the web's /metrics/ shows it, because the store is Redis.
    worker_app = make_app()
    metrics.declare("monitorapp_test_events_total", "counter", "Test events.", ("kind",))
    metrics.declare("monitorapp_test_seconds", "histogram", "Test durations.")
    with worker_app.app_context():
        metrics.inc("monitorapp_test_events_total", kind="a")
        metrics.inc("monitorapp_test_events_total", 2, kind="a")
        metrics.observe("monitorapp_test_seconds", 0.2)
    web = make_app(METRICS_TOKEN="t" * 32)
    text = web.test_client().get("/metrics/", headers={"Authorization": "Bearer " + "t" * 32}).get_data(as_text=True)
    assert 'monitorapp_test_events_total{kind="a"} 3.0' in text
    assert 'monitorapp_test_seconds_bucket{le="0.25"} 1.0' in text
    assert 'monitorapp_test_seconds_bucket{le="0.1"} 0.0' in text
    assert "monitorapp_test_seconds_count 1.0" in text


def test_metrics_survive_a_dead_redis(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", METRICS_TOKEN="t" * 32)
    with app.app_context():
        metrics.inc("monitorapp_http_requests_total", status="200")  # best-effort: no exception
    response = app.test_client().get("/metrics/", headers={"Authorization": "Bearer " + "t" * 32})
    assert response.status_code == 200
