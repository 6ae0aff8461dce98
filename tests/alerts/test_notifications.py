"""Notifications end to end: checks recorded by the check engine, jobs run by a real
worker, messages received by real local servers (an HTTP receiver, an SMTP server)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import Incident, NotificationChannel, NotificationDelivery, utcnow
from monitorapp.monitoring.incidents import open_incident
from monitorapp.notify.sending import deliver_notification, enqueue_deliveries, send_reminders
from monitorapp.queues import NOTIFY_QUEUE, get_queue
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import add_channel, make_endpoint, record, run_worker


def channel_row(channel_id) -> NotificationChannel:
    with system_scope():
        row = db.session.scalars(select(NotificationChannel).where(NotificationChannel.id == channel_id)).one()
        db.session.expunge_all()
        return row


def deliveries(channel_id) -> list[NotificationDelivery]:
    with system_scope():
        rows = db.session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.channel_id == channel_id)
            .order_by(NotificationDelivery.id)
        ).all()
        db.session.expunge_all()
        return rows


def test_an_outage_reaches_an_apprise_json_webhook_when_it_opens_and_when_it_resolves(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id, name="shop")
    add_channel(team_a.id, name="ops", kind="apprise", target=f"json://127.0.0.1:{receiver.port}/hook")

    record(endpoint, "+--")
    run_worker()

    [opened] = receiver.bodies
    assert opened["title"] == "DOWN: shop"
    assert "HTTP 503 Service Unavailable." in opened["message"]
    assert f"https://monitor.example.test/endpoints/{endpoint.id}" in opened["message"]
    assert "since" in opened["message"]

    record(endpoint, "+", start=utcnow())
    run_worker()

    assert [body["title"] for body in receiver.bodies] == ["DOWN: shop", "UP: shop"]
    assert "up again after" in receiver.bodies[1]["message"]


def test_an_email_channel_mails_only_the_chosen_members(ctx, team_a, alice, bob, mailbox):
    endpoint = make_endpoint(team_a.id, name="api")
    add_channel(team_a.id, name="on call", kind="email", email_recipients=[str(bob.user_id)])

    record(endpoint, "--")
    run_worker()

    [(recipients, message)] = mailbox.messages
    assert recipients == ["bob@example.com"]
    assert message["Subject"] == "[monitorapp] DOWN: api"
    body = message.get_content()
    assert "HTTP 503 Service Unavailable." in body
    assert f"https://monitor.example.test/endpoints/{endpoint.id}" in body


def test_a_webhook_gets_the_notification_as_json(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id, name="billing")
    add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url("/alerts"))

    record(endpoint, "--")
    run_worker()

    [body] = receiver.bodies
    assert receiver.paths == ["/alerts"]
    assert body["event"] == "opened"
    assert body["endpoint_name"] == "billing"
    assert body["error"] == "HTTP 503 Service Unavailable."
    assert body["link"] == f"https://monitor.example.test/endpoints/{endpoint.id}"


def test_a_failing_receiver_is_retried_until_it_accepts(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    channel_id = add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())
    receiver.statuses = [503]

    record(endpoint, "--")
    run_worker()

    assert len(receiver.paths) == 2 and len(receiver.bodies) == 1
    [delivery] = deliveries(channel_id)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    channel = channel_row(channel_id)
    assert not channel.failing and channel.last_success_at is not None


def test_a_repeated_job_or_event_sends_nothing_twice(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    channel_id = add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())
    record(endpoint, "--")
    run_worker()
    [delivery] = deliveries(channel_id)

    # The same job again (an RQ redelivery), and the same event offered again.
    get_queue(NOTIFY_QUEUE).enqueue(deliver_notification, delivery.id)
    enqueue_deliveries([delivery.id])
    from monitorapp.monitoring.incidents import OPENED, Event
    from monitorapp.notify.sending import enqueue_notifications

    with system_scope():
        incident = db.session.scalars(select(Incident)).one()
        event = Event(OPENED, incident.id, incident.endpoint_id, incident.tenant_id, incident.started_at)
    assert enqueue_notifications([event]) == []
    run_worker()

    assert len(receiver.bodies) == 1
    assert len(deliveries(channel_id)) == 1


def test_a_channel_is_marked_failing_after_a_permanent_error_without_retrying(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    channel_id = add_channel(team_a.id, name="gone", kind="webhook", target=receiver.url())
    receiver.statuses = [410]

    record(endpoint, "--")
    run_worker()

    assert len(receiver.paths) == 1  # a 410 will not change by asking again
    [delivery] = deliveries(channel_id)
    assert delivery.status == "failed"
    channel = channel_row(channel_id)
    assert channel.failing and channel.last_error == "the webhook answered HTTP 410"


def test_a_channel_is_marked_failing_when_its_retries_run_out(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    channel_id = add_channel(team_a.id, name="flaky", kind="webhook", target=receiver.url())
    receiver.statuses = [500, 500, 500]

    record(endpoint, "--")
    run_worker()

    assert len(receiver.paths) == 3  # the first try and two retries
    [delivery] = deliveries(channel_id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert channel_row(channel_id).failing


def test_a_later_success_clears_the_failing_mark(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    channel_id = add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())
    receiver.statuses = [410]
    record(endpoint, "--")
    run_worker()
    assert channel_row(channel_id).failing

    record(endpoint, "+", start=utcnow())
    run_worker()

    assert not channel_row(channel_id).failing


def test_disabled_channels_and_channels_for_other_endpoints_stay_quiet(ctx, team_a, receiver):
    shop = make_endpoint(team_a.id, name="shop")
    blog = make_endpoint(team_a.id, name="blog")
    add_channel(team_a.id, name="shop only", kind="webhook", target=receiver.url("/shop"),
                all_endpoints="0", endpoint_ids=[str(shop.id)])
    add_channel(team_a.id, name="off", kind="webhook", target=receiver.url("/off"), enabled=False)

    record(blog, "--")
    record(shop, "--")
    run_worker()

    assert receiver.paths == ["/shop"]
    assert receiver.bodies[0]["endpoint_name"] == "shop"


def test_another_teams_channels_hear_nothing(ctx, team_a, team_b, receiver):
    endpoint = make_endpoint(team_a.id)
    add_channel(team_b.id, name="b", kind="webhook", target=receiver.url())

    record(endpoint, "--")
    run_worker()

    assert receiver.paths == []


def test_the_dead_letter_failure_is_notified(ctx, team_a, receiver):
    from monitorapp.monitoring.scheduler import schedule_endpoint_checks
    from tests.conftest import free_port

    endpoint = make_endpoint(team_a.id, name="refusing", url=f"http://127.0.0.1:{free_port()}/")
    add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())

    schedule_endpoint_checks()
    run_worker()

    assert [body["event"] for body in receiver.bodies] == ["check_failed"]
    assert receiver.bodies[0]["title"] == "Check failed: refusing"
    assert "failed after 2 attempts" in receiver.bodies[0]["body"]
    with system_scope():
        assert open_incident(endpoint.id) is None  # one failed check is below the threshold of 2


def test_reminders_repeat_every_n_hours_until_acknowledged(ctx, team_a, bob, receiver):
    endpoint = make_endpoint(team_a.id, name="shop")
    add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url(), reminder_hours=1)
    record(endpoint, "--", start=utcnow() - timedelta(hours=3, minutes=30))
    run_worker()
    assert [body["event"] for body in receiver.bodies] == ["opened"]

    assert send_reminders() == 1
    assert send_reminders() == 0  # the third hour's reminder is out already
    run_worker()
    assert [body["event"] for body in receiver.bodies] == ["opened", "reminder"]
    assert receiver.bodies[1]["title"] == "Still DOWN: shop"

    with system_scope():
        incident = open_incident(endpoint.id)
        assert incident.last_reminder_at is not None
        incident.acknowledged_at = utcnow()
        incident.acknowledged_by_id = bob.user_id
        db.session.commit()
    assert send_reminders(now=utcnow() + timedelta(hours=2)) == 0


def test_the_whole_path_scheduler_check_incident_notification_and_back(ctx, team_a, receiver):
    """A locally served target goes down and comes back; the scheduler and a worker do the rest."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sqlalchemy import update

    from monitorapp.models import Endpoint
    from monitorapp.monitoring.scheduler import schedule_endpoint_checks

    answer = {"status": 500}

    class Target(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
            self.send_response(answer["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args) -> None:
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    try:
        make_endpoint(team_a.id, name="local", url=f"http://127.0.0.1:{target.server_address[1]}/",
                      failure_threshold=1)
        add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())

        def check_now() -> None:
            with system_scope():
                db.session.execute(update(Endpoint).values(next_check_at=None))
                db.session.commit()
            schedule_endpoint_checks()
            run_worker()

        check_now()
        assert [body["title"] for body in receiver.bodies] == ["DOWN: local"]
        assert "HTTP 500 Internal Server Error." in receiver.bodies[0]["body"]

        answer["status"] = 200
        check_now()
        assert [body["title"] for body in receiver.bodies] == ["DOWN: local", "UP: local"]
    finally:
        target.shutdown()
        target.server_close()


def test_the_outbound_policy_is_applied_again_at_send_time(ctx, team_a, receiver):
    endpoint = make_endpoint(team_a.id)
    webhook = add_channel(team_a.id, name="hook", kind="webhook", target=receiver.url())
    apprise_json = add_channel(team_a.id, name="json", kind="apprise", target=f"json://127.0.0.1:{receiver.port}/x")
    ctx.config["ALLOWED_PRIVATE_NETWORKS"] = ()  # loopback no longer allowed after saving

    record(endpoint, "--")
    run_worker()

    assert receiver.paths == []
    for channel_id in (webhook, apprise_json):
        channel = channel_row(channel_id)
        assert channel.failing and "private or reserved address" in channel.last_error


def test_the_reminder_job_is_registered_with_the_scheduler_under_a_stable_id(ctx):
    from rq_scheduler import Scheduler

    from monitorapp.monitoring.scheduler import recurring_jobs_missing, register_recurring_jobs
    from monitorapp.notify.sending import REMINDER_JOB_ID
    from monitorapp.queues import get_redis

    scheduler = Scheduler(queue_name="default", connection=get_redis())
    assert recurring_jobs_missing(scheduler)
    register_recurring_jobs(scheduler)
    register_recurring_jobs(scheduler)  # a restart does not duplicate it

    assert REMINDER_JOB_ID in scheduler
    assert [job.id for job in scheduler.get_jobs()].count(REMINDER_JOB_ID) == 1
    assert not recurring_jobs_missing(scheduler)
