"""Checks due before the next tick are claimed now and start at their due second."""

from __future__ import annotations

from datetime import timedelta

from rq.registry import ScheduledJobRegistry

from monitorapp.models import utcnow
from monitorapp.monitoring.scheduler import schedule_endpoint_checks
from monitorapp.queues import CHECKS_QUEUE, get_queue, get_redis
from tests.monitoring.conftest import make_endpoint
from tests.monitoring.test_scheduler import set_due


def scheduled_at() -> dict[str, float]:
    """Endpoint id → the time its check job is scheduled for."""
    registry = ScheduledJobRegistry(queue=get_queue(CHECKS_QUEUE))
    found = {}
    for job_id in registry.get_job_ids():
        job = get_queue(CHECKS_QUEUE).fetch_job(job_id)
        when = get_redis().zscore(registry.key, job_id)
        for endpoint_id, _claimed_at in job.args[0]:
            found[endpoint_id] = when
    return found


def queued() -> set[str]:
    return {pair[0] for job in get_queue(CHECKS_QUEUE).get_jobs() for pair in job.args[0]}


def test_a_check_due_before_the_next_tick_waits_for_its_second(make_app, team_a):
    now = utcnow()
    due_now = make_endpoint(team_a, "http://a.example/")
    soon = make_endpoint(team_a, "http://b.example/")
    after_the_tick = make_endpoint(team_a, "http://c.example/")
    set_due(due_now, now - timedelta(seconds=1))
    set_due(soon, now + timedelta(seconds=12))
    set_due(after_the_tick, now + timedelta(seconds=45))

    assert schedule_endpoint_checks() == 2  # the look-ahead is one tick (30 s) by default

    assert queued() == {str(due_now.id)}
    waiting = scheduled_at()
    assert set(waiting) == {str(soon.id)}
    due_second = int((now + timedelta(seconds=12)).timestamp())
    assert abs(waiting[str(soon.id)] - due_second) <= 1


def test_no_look_ahead_claims_only_what_is_due(make_app, team_a, monkeypatch):
    from flask import current_app

    monkeypatch.setitem(current_app.config, "SCHEDULER_LOOKAHEAD_SECONDS", 0)
    now = utcnow()
    due_now = make_endpoint(team_a, "http://a.example/")
    soon = make_endpoint(team_a, "http://b.example/")
    set_due(due_now, now - timedelta(seconds=1))
    set_due(soon, now + timedelta(seconds=12))

    assert schedule_endpoint_checks() == 1
    assert queued() == {str(due_now.id)}
    assert scheduled_at() == {}
