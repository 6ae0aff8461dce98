"""The channels page: list, create with kind-specific fields, edit, enable/disable, delete, send test."""

from __future__ import annotations

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, NotificationChannel
from monitorapp.tenancy import system_scope
from tests.alerts.conftest import add_channel
from tests.conftest import csrf_token, login


def channels_of(team_id) -> list[NotificationChannel]:
    with system_scope():
        rows = db.session.scalars(select(NotificationChannel).where(NotificationChannel.tenant_id == team_id)).all()
        return rows


def post(client, path, data, htmx=False):
    headers = {"X-CSRFToken": csrf_token(client, "/channels")}
    if htmx:
        headers["HX-Request"] = "true"
    return client.post(path, data=data, headers=headers)


def test_a_member_adds_an_apprise_channel_and_sees_it_listed(client, alice, bob, receiver):
    login(client, bob)
    response = post(client, "/channels", {"name": "Ops Slack", "kind": "apprise",
                                          "target": f"json://127.0.0.1:{receiver.port}/hook", "reminder_hours": "2"})

    assert response.status_code == 303
    [channel] = channels_of(bob.team_id)
    assert (channel.name, channel.kind, channel.enabled, channel.all_endpoints, channel.reminder_hours) == (
        "Ops Slack", "apprise", True, True, 2)
    page = client.get("/channels").get_data(as_text=True)
    assert "Ops Slack" in page and channel.target_hint in page
    with system_scope():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "channel.created" in actions


def test_it_answers_422_with_messages_for_a_bad_channel(client, alice):
    login(client, alice)
    response = post(client, "/channels", {"name": "", "kind": "apprise", "target": "not a url"}, htmx=True)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="channel-form"' in html and "<html" not in html
    assert "Enter a name" in html and "Apprise URL" in html
    assert channels_of(alice.team_id) == []


def test_it_refuses_a_target_on_a_private_address(ctx, alice):
    # This app does not allow loopback: the policy applies to webhooks and Apprise hosts alike.
    client = ctx.test_client()
    login(client, alice)
    for kind, target in (("webhook", "http://10.1.2.3/hook"), ("apprise", "json://127.0.0.1:9/hook"),
                         ("apprise", "ntfy://192.168.1.5/alerts"), ("webhook", "http://169.254.169.254/latest")):
        ctx.config["ALLOWED_PRIVATE_NETWORKS"] = ()
        response = post(client, "/channels", {"name": "x", "kind": kind, "target": target})
        assert response.status_code == 422, target
        assert "private or reserved address" in response.get_data(as_text=True)
    assert channels_of(alice.team_id) == []


def test_an_email_channel_needs_recipients_from_the_team(client, alice, bob, charlie):
    login(client, alice)
    response = post(client, "/channels", {"name": "mail", "kind": "email", "email_recipients": [str(charlie.user_id)]})
    assert response.status_code == 422
    assert "Choose at least one team member" in response.get_data(as_text=True)

    response = post(client, "/channels", {"name": "mail", "kind": "email",
                                          "email_recipients": [str(bob.user_id), str(charlie.user_id)]})
    assert response.status_code == 303
    [channel] = channels_of(alice.team_id)
    assert channel.email_recipients == [str(bob.user_id)]


def test_editing_keeps_the_stored_target_when_the_field_is_left_empty(client, alice, receiver):
    channel_id = add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url("/a"))
    [before] = channels_of(alice.team_id)
    login(client, alice)

    response = post(client, f"/channels/{channel_id}/edit", {"name": "renamed", "target": "", "reminder_hours": "0"})

    assert response.status_code == 303
    [after] = channels_of(alice.team_id)
    assert after.name == "renamed" and after.target_encrypted == before.target_encrypted


def test_toggle_disables_and_enables_a_channel(client, alice, receiver):
    channel_id = add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    login(client, alice)

    response = post(client, f"/channels/{channel_id}/toggle", {}, htmx=True)
    assert response.status_code == 200 and "Enable" in response.get_data(as_text=True)
    assert channels_of(alice.team_id)[0].enabled is False
    post(client, f"/channels/{channel_id}/toggle", {})
    assert channels_of(alice.team_id)[0].enabled is True


def test_delete_removes_the_channel(client, alice, receiver):
    channel_id = add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    login(client, alice)

    response = post(client, f"/channels/{channel_id}/delete", {})

    assert response.status_code == 303
    assert channels_of(alice.team_id) == []


def test_send_test_reaches_the_receiver_and_records_success(client, alice, receiver):
    channel_id = add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    login(client, alice)

    response = post(client, f"/channels/{channel_id}/test", {}, htmx=True)

    assert response.status_code == 200
    assert "Sent a test through hook" in response.get_data(as_text=True)
    assert [body["event"] for body in receiver.bodies] == ["test"]
    assert channels_of(alice.team_id)[0].last_success_at is not None
    assert channel_id


def test_a_failing_test_shows_the_error_and_the_failing_mark(client, alice, receiver):
    add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    [channel] = channels_of(alice.team_id)
    receiver.statuses = [404]
    login(client, alice)

    post(client, f"/channels/{channel.id}/test", {})
    page = client.get("/channels").get_data(as_text=True)

    assert "the webhook answered HTTP 404" in page
    assert "failing" in page


def test_a_viewer_reads_the_channels_but_gets_no_forms(client, alice, victor, receiver):
    add_channel(alice.team_id, name="hook", kind="webhook", target=receiver.url())
    login(client, victor)

    page = client.get("/channels").get_data(as_text=True)

    assert "hook" in page
    assert 'id="channel-form"' not in page and "Send test" not in page
    assert post(client, "/channels", {"name": "x", "kind": "webhook", "target": receiver.url()}).status_code == 403
