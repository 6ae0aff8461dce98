"""Every route in `app.url_map`, for every actor: the tenant walls and the roles.

The cases are generated from the URL map, not listed by hand: a new route that
is not classified in tests/routes.py fails `test_every_route_is_classified`, and every
classified route is then exercised for anonymous visitors, for charlie (a
stranger from another team, given alice's ids) and for victor (a viewer in
alice's team) on every method it accepts.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import Endpoint, Invitation, Membership, Role, utcnow
from monitorapp.tenancy import system_scope, tenant_scope
from tests.conftest import csrf_token, login, make_token
from tests.routes import OWNER, PERSONAL, PUBLIC, TEAM, WRITE_METHODS, routes

ALICE_SECRET_NAME = "alice-private-endpoint"


def test_every_route_is_classified(app):
    known = PUBLIC | PERSONAL | TEAM | OWNER
    unclassified = sorted({rule.endpoint for rule, _ in routes(app)} - known)
    assert unclassified == [], "classify these routes in tests/routes.py: " + ", ".join(unclassified)


def test_every_view_declares_its_access_rule(app):
    # Views without a rule would be treated as needing a session (fail closed);
    # declaring one keeps the CSRF and sign-in decisions explicit.
    missing = sorted(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and getattr(app.view_functions[rule.endpoint], "access_rule", None) is None
    )
    assert missing == []


def test_an_expired_session_on_an_htmx_post_is_sent_to_sign_in(app, world):
    client = app.test_client()
    endpoint_id = world["ids"]["endpoint_id"]
    response = client.post(
        f"/dashboard/endpoints/{endpoint_id}/delete",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/dashboard?page=2"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?next=/dashboard?page%3D2"


@pytest.fixture
def world(ctx, alice, bob, victor, charlie):
    """One of everything team-owned in alice's team, and the ids that name them."""
    with tenant_scope(alice.team_id):
        endpoint = Endpoint(name=ALICE_SECRET_NAME, url="https://alice-secret.example/health", created_by_id=alice.user_id)
        db.session.add(endpoint)
        invitation = Invitation(email="newcomer@example.com", role=Role.MEMBER.value, invited_by_id=alice.user_id,
                                expires_at=utcnow() + timedelta(days=3))
        db.session.add(invitation)
        db.session.commit()
        bob_membership = db.session.execute(select(Membership).where(Membership.user_id == bob.user_id)).scalar_one()
        ids = {"endpoint_id": endpoint.id, "invitation_id": invitation.id, "membership_id": bob_membership.id}
    alice_token = make_token(alice)
    with system_scope():
        from monitorapp.models import ApiToken

        ids["token_id"] = db.session.execute(select(ApiToken.id).where(ApiToken.user_id == alice.user_id)).scalar_one()
    _add_alert_objects(alice, ids)
    db.session.expunge_all()
    return {"ids": ids, "alice_token": alice_token}


def _add_alert_objects(alice, ids) -> None:
    """Incidents and channels, once the alerts area defines them."""
    import monitorapp.models as models

    if not hasattr(models, "Incident"):
        return
    with tenant_scope(alice.team_id):
        incident = models.Incident(endpoint_id=ids["endpoint_id"], started_at=utcnow(), first_error="boom")
        db.session.add(incident)
        db.session.flush()
        ids["incident_id"] = incident.id
        if hasattr(models, "NotificationChannel"):
            from monitorapp.notify import create_channel

            channel = create_channel(name="alice-channel", kind="webhook", target="https://hooks.example.com/x")
            ids["channel_id"] = channel.id
        db.session.commit()


def url_for_rule(rule, ids: dict) -> str | None:
    """The rule's path with alice's ids filled in; None if it takes a signed token."""
    values = {}
    for name in rule.arguments:
        if name in ("token", "filename"):
            return None
        if name not in ids:
            raise AssertionError(f"route {rule.endpoint} takes <{name}>: add alice's {name} to the world fixture")
        values[name] = ids[name]
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", str(value), path)
    return path


def request(client, method: str, path: str, api: bool, token: str | None = None, csrf: str | None = None):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if csrf:
        headers["X-CSRFToken"] = csrf
    if api and method in ("POST", "PATCH", "PUT"):
        return client.open(path, method=method, json={}, headers=headers)
    return client.open(path, method=method, data={}, headers=headers)


def cases(app, names: set[str]):
    for rule, method in routes(app):
        if rule.endpoint in names:
            yield rule, method


def test_anonymous_visitors_are_sent_to_sign_in(app, world):
    client = app.test_client()
    checked = 0
    for rule, method in cases(app, PERSONAL | TEAM | OWNER):
        path = url_for_rule(rule, world["ids"])
        api = path.startswith("/api/")
        response = request(client, method, path, api)
        if api:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        elif method in WRITE_METHODS:
            # No session: refused before anything happens (CSRF or sign-in), never performed.
            assert response.status_code in (302, 303, 400), (method, path, response.status_code)
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert "/login?next=" in response.headers["Location"]
        checked += 1
    assert checked > 10


def test_a_stranger_gets_404_for_every_foreign_id_exactly_like_a_missing_one(app, world, charlie):
    client = app.test_client()
    login(client, charlie)
    csrf = csrf_token(client, "/account")
    charlie_token = make_token(charlie)
    missing = {name: uuid.uuid4() for name in world["ids"]}
    checked = 0
    for rule, method in cases(app, PERSONAL | TEAM | OWNER):
        if not rule.arguments:
            continue
        path = url_for_rule(rule, world["ids"])
        missing_path = url_for_rule(rule, missing)
        api = path.startswith("/api/")
        token = charlie_token if api else None
        response = request(client, method, path, api, token=token, csrf=csrf)
        assert response.status_code == 404, (method, path, response.status_code)
        body = response.get_data(as_text=True)
        assert ALICE_SECRET_NAME not in body and "alice" not in body.lower()
        baseline = request(client, method, missing_path, api, token=token, csrf=csrf)
        assert baseline.status_code == 404
        assert body.replace(path, "") == baseline.get_data(as_text=True).replace(missing_path, ""), (method, path)
        checked += 1
    assert checked > 5


def test_a_stranger_sees_none_of_alices_data_in_lists(app, world, charlie):
    client = app.test_client()
    login(client, charlie)
    charlie_token = make_token(charlie, name="charlie-list")
    for rule, method in cases(app, PERSONAL | TEAM | OWNER):
        if method != "GET" or rule.arguments:
            continue
        api = rule.rule.startswith("/api/")
        response = client.get(rule.rule, headers={"Authorization": f"Bearer {charlie_token}"} if api else {})
        assert response.status_code in (200, 403), (rule.rule, response.status_code)
        body = response.get_data(as_text=True)
        assert ALICE_SECRET_NAME not in body and "alice-secret.example" not in body, rule.rule


def test_a_viewer_cannot_write_team_data(app, world, victor):
    client = app.test_client()
    login(client, victor)
    csrf = csrf_token(client, "/account")
    from monitorapp.models import TokenScope

    read_token = make_token(victor, scope=TokenScope.READ, name="victor")
    checked = 0
    for rule, method in cases(app, TEAM | OWNER):
        path = url_for_rule(rule, world["ids"])
        api = path.startswith("/api/")
        if method not in WRITE_METHODS and rule.endpoint not in OWNER:
            continue
        response = request(client, method, path, api, token=read_token if api else None, csrf=csrf)
        assert response.status_code == 403, (method, path, response.status_code)
        checked += 1
    assert checked > 5


def test_a_member_cannot_administer_the_team(app, world, bob):
    client = app.test_client()
    login(client, bob)
    csrf = csrf_token(client, "/account")
    for rule, method in cases(app, OWNER):
        path = url_for_rule(rule, world["ids"])
        response = request(client, method, path, False, csrf=csrf)
        assert response.status_code == 403, (method, path, response.status_code)
