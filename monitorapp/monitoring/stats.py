"""The check engine's metrics, declared once for every process.

The worker and the scheduler record into Redis; the web process serves them
on `/metrics/`, so it imports this module too. The live gauges are computed
when `/metrics/` is scraped: endpoints by status from the database, queue
depth and dead letters from Redis.
"""

from __future__ import annotations

from rq.registry import FailedJobRegistry
from sqlalchemy import func, select

from monitorapp import metrics
from monitorapp.extensions import db
from monitorapp.models import Endpoint
from monitorapp.queues import QUEUE_NAMES, get_queue

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)

metrics.declare("monitorapp_checks_total", "counter", "Checks run, by result (up, down, retry).", ("result",))
metrics.declare(
    "monitorapp_check_duration_seconds", "histogram", "Time one check took.", buckets=LATENCY_BUCKETS
)
metrics.declare("monitorapp_scheduler_tick_seconds", "histogram", "Duration of one scheduler tick.")
metrics.declare("monitorapp_scheduler_lag_seconds", "gauge", "Now minus the oldest due time claimed by the last tick.")
metrics.declare("monitorapp_scheduler_claimed_total", "counter", "Endpoints claimed by the scheduler.")


@metrics.live_gauge("monitorapp_endpoints", "Endpoints by status.", ("status",))
def endpoints_by_status():
    rows = db.session.execute(
        select(Endpoint.status, func.count()).group_by(Endpoint.status).execution_options(system_scope=True)
    ).all()
    return [({"status": status}, count) for status, count in rows]


@metrics.live_gauge("monitorapp_queue_depth", "Jobs waiting in each RQ queue.", ("queue",))
def queue_depth():
    return [({"queue": name}, get_queue(name).count) for name in QUEUE_NAMES]


@metrics.live_gauge("monitorapp_failed_jobs", "Jobs in each queue's failed registry (the dead letters).", ("queue",))
def failed_jobs():
    return [({"queue": name}, FailedJobRegistry(queue=get_queue(name)).count) for name in QUEUE_NAMES]
