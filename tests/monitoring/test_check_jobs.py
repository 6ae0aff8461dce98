"""Check jobs on a real RQ worker in burst mode, against real local servers."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import Endpoint, utcnow
from monitorapp.monitoring.jobs import Outcome, Target, record_results
from monitorapp.monitoring.probe import ProbeResult
from monitorapp.monitoring.scheduler import next_slot, schedule_endpoint_checks, stamp_first_claim
from monitorapp.queues import CHECKS_QUEUE, get_queue
from monitorapp.tenancy import system_scope
from tests.monitoring.conftest import make_endpoint, reload, results_of, run_worker


def dead_letters() -> int:
    return FailedJobRegistry(queue=get_queue(CHECKS_QUEUE)).count


def test_it_records_a_check_and_updates_the_endpoint(ctx, team_a, server):
    endpoint = make_endpoint(team_a, server.url("/ok"))
    assert schedule_endpoint_checks() == 1
    run_worker()

    [result] = results_of(endpoint.id)
    assert (result.ok, result.status_code, result.error_kind, result.attempt) == (True, 200, None, 1)
    assert result.tenant_id == endpoint.tenant_id
    endpoint = reload(endpoint)
    assert endpoint.status == "up"
    assert endpoint.last_status_code == 200
    assert endpoint.last_latency_ms == result.latency_ms
    assert endpoint.last_checked_at == result.checked_at
    assert endpoint.last_error is None
    # The check moved the endpoint on to its next slot on the grid.
    assert endpoint.next_check_at == next_slot(endpoint.id, 5, result.checked_at)


def test_it_counts_an_http_error_at_once(ctx, team_a, server):
    endpoint = make_endpoint(team_a, server.url("/error"))
    schedule_endpoint_checks()
    run_worker()

    [result] = results_of(endpoint.id)
    assert (result.ok, result.status_code, result.error_kind, result.attempt) == (False, 500, "http_status", 1)
    endpoint = reload(endpoint)
    assert endpoint.status == "down"
    assert endpoint.last_error == "HTTP 500 Internal Server Error."
    assert [path for path, _ in server.requests] == ["/error"]  # no retry
    assert dead_letters() == 0


def test_it_retries_a_network_failure_and_dead_letters_it_after_the_last_try(ctx, team_a, refused_port, caplog):
    endpoint = make_endpoint(team_a, f"http://127.0.0.1:{refused_port}/")
    caplog.set_level(logging.INFO, logger="monitors")
    schedule_endpoint_checks()
    run_worker()

    # One recorded check: the third try (the first and two retries).
    [result] = results_of(endpoint.id)
    assert (result.ok, result.error_kind, result.attempt) == (False, "connect", 3)
    endpoint = reload(endpoint)
    assert endpoint.status == "down"
    assert endpoint.next_check_at == next_slot(endpoint.id, 5, result.checked_at)
    assert dead_letters() == 1
    events = [record.event for record in caplog.records if record.name == "monitors.checks"]
    attempts = [(event["status"], event["attempt"]) for event in events]
    assert attempts == [("retry", 1), ("retry", 2), ("down", 3)]
    [notice] = [record for record in caplog.records if record.getMessage() == "endpoint check failed after retries"]
    assert notice.event["endpoint"] == str(endpoint.id)
    assert notice.event["notification"] == "pending"


def test_it_counts_the_retry_that_succeeds(ctx, team_a, make_server):
    hits = []

    def flaky(handler):
        hits.append(1)
        if len(hits) <= 2:
            handler.close_connection = True  # hang up without an answer
            return
        handler.reply(200)

    flaky_server = make_server({"/": flaky})
    endpoint = make_endpoint(team_a, flaky_server.url("/"))
    schedule_endpoint_checks()
    run_worker()

    [result] = results_of(endpoint.id)
    assert (result.ok, result.attempt) == (True, 3)
    assert reload(endpoint).status == "up"
    assert dead_letters() == 0


def test_it_skips_an_endpoint_deleted_after_it_was_claimed(ctx, team_a, server):
    endpoint = make_endpoint(team_a, server.url("/ok"))
    schedule_endpoint_checks()
    with system_scope():
        db.session.delete(reload(endpoint))
        db.session.commit()
    run_worker()

    assert server.requests == []
    assert dead_letters() == 0


def test_it_skips_an_endpoint_paused_after_it_was_claimed(ctx, team_a, server):
    endpoint = make_endpoint(team_a, server.url("/ok"))
    schedule_endpoint_checks()
    with system_scope():
        reload(endpoint).paused = True
        db.session.commit()
    run_worker()

    assert server.requests == []
    assert results_of(endpoint.id) == []


def test_a_hanging_target_does_not_hold_up_the_others(ctx, team_a, server):
    ctx.config["CHECK_RETRY_INTERVALS"] = ()  # record the hanging check at its first deadline
    hanging = make_endpoint(team_a, server.url("/trickle-headers"))
    fast = [make_endpoint(team_a, server.url(f"/ok?n={n}")) for n in range(20)]
    with system_scope():
        # The hanging one is first in line.
        db.session.get(Endpoint, hanging.id).next_check_at = utcnow().replace(year=2000)
        db.session.commit()
    schedule_endpoint_checks()
    run_worker()

    [hung] = results_of(hanging.id)
    assert hung.error_kind == "timeout"
    finished = [results_of(endpoint.id)[0] for endpoint in fast]
    assert [result.error_kind for result in finished] == [None] * len(fast)
    assert max(result.checked_at for result in finished) < hung.checked_at


def test_an_old_check_does_not_move_a_newer_claim_on(ctx, team_a):
    endpoint = make_endpoint(team_a, "http://127.0.0.1:9/")
    with system_scope():
        row = reload(endpoint)
        old_claim = stamp_first_claim(row, utcnow().replace(microsecond=0))
        db.session.commit()
        newer = stamp_first_claim(row)  # resumed or edited meanwhile
        db.session.commit()
        held_until = reload(endpoint).next_check_at
        target = Target(endpoint.id, endpoint.tenant_id, endpoint.url, old_claim.claimed_at)
        record_results([Outcome(target, ProbeResult(True, 200, 12), 1, utcnow())])

    endpoint = reload(endpoint)
    assert endpoint.last_enqueued_at == newer.claimed_at
    assert endpoint.next_check_at == held_until
    assert endpoint.status == "up"  # the result itself still counts


def test_checks_of_another_team_are_stamped_with_the_endpoints_team(ctx, team_a, team_b, server):
    mine = make_endpoint(team_a, server.url("/ok?team=a"))
    theirs = make_endpoint(team_b, server.url("/ok?team=b"))
    schedule_endpoint_checks()
    run_worker()

    assert [r.tenant_id for r in results_of(mine.id)] == [mine.tenant_id]
    assert [r.tenant_id for r in results_of(theirs.id)] == [theirs.tenant_id]
    assert mine.tenant_id != theirs.tenant_id
    statuses = db.session.execute(select(Endpoint.status).execution_options(system_scope=True)).scalars().all()
    assert statuses == ["up", "up"]


def test_a_network_failure_is_retried_later_and_does_not_count_yet(ctx, team_a, refused_port):
    ctx.config["CHECK_RETRY_INTERVALS"] = (30, 60)
    endpoint = make_endpoint(team_a, f"http://127.0.0.1:{refused_port}/")
    schedule_endpoint_checks()
    run_worker()

    scheduled = ScheduledJobRegistry(queue=get_queue(CHECKS_QUEUE))
    [job_id] = scheduled.get_job_ids()
    assert scheduled.get_scheduled_time(job_id) > utcnow() + timedelta(seconds=25)
    assert results_of(endpoint.id) == []
    assert reload(endpoint).status == "pending"
    assert dead_letters() == 0


def test_requeueing_a_dead_letter_checks_the_endpoint_again(ctx, team_a, make_server):
    answers = []

    def down_then_up(handler):
        answers.append(1)
        if len(answers) <= 3:
            handler.close_connection = True
            return
        handler.reply(200)

    endpoint = make_endpoint(team_a, make_server({"/": down_then_up}).url("/"))
    schedule_endpoint_checks()
    run_worker()
    registry = FailedJobRegistry(queue=get_queue(CHECKS_QUEUE))
    [job_id] = registry.get_job_ids()
    assert reload(endpoint).status == "down"

    registry.requeue(job_id)
    run_worker()

    assert [result.ok for result in results_of(endpoint.id)] == [False, True]
    assert reload(endpoint).status == "up"
    assert registry.count == 0
