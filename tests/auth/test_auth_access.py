"""Who may use each accounts-and-teams route, generated from the URL map.

Every `auth.*` route must declare its access rule (see monitorapp/auth/access.py);
adding one without it fails here.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import ApiToken, Invitation, Membership, utcnow
from monitorapp.tenancy import system_scope
from tests.conftest import csrf_token, login, make_token

RULES = {"public", "account", "login", "write", "owner"}


def auth_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("auth."):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


@pytest.fixture
def alices_ids(alice, bob):
    """Ids of rows in alice's team, to try from outside it."""
    make_token(alice)
    with system_scope():
        db.session.add(
            Invitation(tenant_id=alice.team_id, email="guest@example.com", role="member", expires_at=utcnow())
        )
        db.session.commit()
        return {
            "token_id": db.session.execute(select(ApiToken.id)).scalar_one(),
            "invitation_id": db.session.execute(select(Invitation.id)).scalar_one(),
            "membership_id": db.session.execute(
                select(Membership.id).where(Membership.user_id == bob.user_id)
            ).scalar_one(),
        }


def build_path(rule, ids) -> str:
    values = {arg: ids.get(arg, "not-a-real-token") for arg in rule.arguments}
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(values[m.group(1)]), rule.rule)


def call(client, method, path, token):
    if method == "GET":
        return client.get(path)
    return client.open(path, method=method, data={"csrf_token": token})


def test_every_route_declares_its_access_rule(app):
    for rule, _method in auth_routes(app):
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "access_rule", None) in RULES, f"{rule.rule} has no access rule"


def test_anonymous_people_are_sent_to_log_in(app, client, alices_ids):
    token = csrf_token(client, "/login")
    for rule, method in auth_routes(app):
        if app.view_functions[rule.endpoint].access_rule == "public":
            continue
        response = call(client, method, build_path(rule, alices_ids), token)
        assert response.status_code == 302, f"{method} {rule.rule}"
        assert response.headers["Location"].startswith("/login?next="), f"{method} {rule.rule}"


def test_a_viewer_is_refused_every_owner_and_write_route(app, client, victor, alices_ids):
    login(client, victor)
    token = csrf_token(client, "/account")
    for rule, method in auth_routes(app):
        if app.view_functions[rule.endpoint].access_rule not in ("owner", "write"):
            continue
        response = call(client, method, build_path(rule, alices_ids), token)
        assert response.status_code == 403, f"{method} {rule.rule}"


def test_a_member_is_refused_every_owner_route(app, client, bob, alices_ids):
    login(client, bob)
    token = csrf_token(client, "/account")
    for rule, method in auth_routes(app):
        if app.view_functions[rule.endpoint].access_rule != "owner":
            continue
        response = call(client, method, build_path(rule, alices_ids), token)
        assert response.status_code == 403, f"{method} {rule.rule}"


def test_a_stranger_finds_nothing_by_alices_ids(app, client, charlie, alices_ids):
    login(client, charlie)
    token = csrf_token(client, "/account")
    for rule, method in auth_routes(app):
        if not {"token_id", "invitation_id", "membership_id"} & set(rule.arguments):
            continue
        response = call(client, method, build_path(rule, alices_ids), token)
        assert response.status_code == 404, f"{method} {rule.rule}"
        assert "bob@example.com" not in response.get_data(as_text=True)
    with system_scope():
        assert db.session.execute(select(ApiToken.revoked_at)).scalar_one() is None
        assert db.session.execute(select(Membership).where(Membership.tenant_id == charlie.team_id)).scalars().all()


def test_an_owner_sees_the_audit_log_paginated(client, alice):
    from monitorapp.auth import audit
    from monitorapp.tenancy import tenant_scope

    with tenant_scope(alice.team_id):
        for number in range(60):
            audit.record("test.event", target=f"thing-{number:02d}", actor_id=alice.user_id)
        db.session.commit()
    login(client, alice)
    first = client.get("/team/audit").get_data(as_text=True)
    assert "thing-59" in first and "thing-10" in first and "thing-09" not in first
    assert "Page 1 of 2" in first
    second = client.get("/team/audit?page=2", headers={"HX-Request": "true"})
    assert "thing-09" in second.get_data(as_text=True)
    assert "<html" not in second.get_data(as_text=True)  # the table fragment only


def test_the_audit_log_shows_only_this_teams_events(client, alice, charlie):
    from monitorapp.auth import audit
    from monitorapp.tenancy import tenant_scope

    with tenant_scope(charlie.team_id):
        audit.record("secret.thing", target="charlies-secret", actor_id=charlie.user_id)
        db.session.commit()
    login(client, alice)
    assert "charlies-secret" not in client.get("/team/audit").get_data(as_text=True)
