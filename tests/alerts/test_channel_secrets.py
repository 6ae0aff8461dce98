"""A channel's token never shows again after saving: not in a page, not in a log line, not at rest."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import select, text

from monitorapp.extensions import db
from monitorapp.logging import JsonFormatter, RedactingFilter
from monitorapp.models import NotificationChannel
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import make_endpoint, record, run_worker
from tests.conftest import csrf_token, login

TOKEN = "xoxb-9f8e7d6c5b4a39281706"


@pytest.fixture
def app_log():
    """A handler like the app's own (its formatter and redacting filter), on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_a_channels_token_appears_in_no_page_no_log_line_and_not_at_rest(client, alice, receiver, caplog, app_log):
    caplog.set_level(logging.DEBUG)
    endpoint = make_endpoint(alice.team_id, name="shop")
    login(client, alice)
    apprise_target = f"json://127.0.0.1:{receiver.port}/hooks/{TOKEN}"
    webhook_target = f"http://127.0.0.1:{receiver.port}/in/{TOKEN}?token={TOKEN}"
    for name, kind, target in (("apprise", "apprise", apprise_target), ("webhook", "webhook", webhook_target)):
        response = client.post("/channels", data={"name": name, "kind": kind, "target": target},
                               headers={"X-CSRFToken": csrf_token(client, "/channels")})
        assert response.status_code == 303

    # Sends that fail (and are retried, and logged) and sends that succeed.
    receiver.statuses = [500, 500]
    record(endpoint, "--")
    run_worker()
    with system_scope():
        channels = db.session.scalars(select(NotificationChannel)).all()
        for channel in channels:
            client.post(f"/channels/{channel.id}/test", headers={"X-CSRFToken": csrf_token(client, "/channels")})
    assert len(receiver.paths) >= 4  # the receiver did get the real target

    pages = [client.get("/channels").get_data(as_text=True)]
    pages += [client.get(f"/channels/{channel.id}/edit").get_data(as_text=True) for channel in channels]
    for page in pages:
        assert TOKEN not in page
    assert "json://…/…" in pages[0]

    log_lines = [record.getMessage() + " " + str(getattr(record, "event", "")) for record in caplog.records]
    assert log_lines, "the sends should have logged something"
    assert not [line for line in log_lines if TOKEN in line]
    assert TOKEN not in app_log.getvalue()

    with system_scope():
        stored = db.session.execute(text("SELECT target_encrypted, target_hint FROM notification_channel")).all()
    for encrypted, hint in stored:
        assert TOKEN not in encrypted and TOKEN not in hint


def test_a_channel_saved_under_another_key_fails_with_a_clear_message(client, alice, receiver, ctx):
    from tests.alerts.conftest import add_channel

    channel_id = add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    ctx.config["NOTIFY_ENCRYPTION_KEY"] = "a-rotated-key-" + "y" * 32
    login(client, alice)

    client.post(f"/channels/{channel_id}/test", headers={"X-CSRFToken": csrf_token(client, "/channels")})

    assert receiver.paths == []
    assert "cannot be decrypted" in client.get("/channels").get_data(as_text=True)
