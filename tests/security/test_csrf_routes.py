"""CSRF on every state-changing route, generated from `app.url_map`.

Every rule and method that can change something (POST, PUT, PATCH, DELETE)
is sent with alice's signed-in session cookie and a body that would do its
job — but with no CSRF token (neither the form field nor the header), with
a garbage token, and with a real token of another session. Each must be
refused with 400 by the CSRF check itself (Flask-WTF logs why), and nothing
may change: not the database, not Redis (no job queued), not the mail
outbox, not the session.

The same requests with alice's own token are then sent once each, and each
must pass the CSRF check and change something: the bodies are real, so the
refusals above are refusals of requests that would have done harm.

Bearer-token API calls are exempt by design (a browser never attaches an
Authorization header cross-site by itself; tests/api/ covers them). That is an
exemption by how a request authenticates, not by route: no route is exempt
for a cookie, so a cookie-authenticated API write without the token is refused
like any form — also when it carries a bogus bearer header.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from werkzeug.security import generate_password_hash

from monitorapp import mail
from monitorapp.extensions import db
from monitorapp.models import ApiToken, Endpoint, Incident, Invitation, Membership, Role, Tenant, User, utcnow
from monitorapp.queues import connect
from monitorapp.tenancy import system_scope, tenant_scope
from tests.conftest import PASSWORD, csrf_token, fresh, login, make_team, make_token
from tests.figures import record

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that take a state-changing method without a CSRF token from a signed-in
# session. None: bearer-token API calls are exempt by how they authenticate, not by route.
EXEMPT: set[tuple[str, str]] = set()
# With a valid token these requests pass the CSRF check but, by design, change nothing kept:
NO_LASTING_EFFECT = {
    "auth.resend_verification": "alice's address is already verified: she only gets a message",
}
NEW_PASSWORD = "a brand new passphrase for alice"
CSRF_LOGGER = "flask_wtf.csrf"


@pytest.fixture
def app(make_app, redis_url):
    # Many writes in a row from one session: the rate limits have their own tests.
    yield from fresh(make_app(RATELIMIT_ENABLED=False), redis_url)


# -- the world: one object per route that needs one ------------------------------------


@dataclass
class World:
    alice: Any
    ids: dict[str, uuid.UUID]
    team_name: str
    tokens: dict[str, str] = field(default_factory=dict)


def _cheap_password(user_id: uuid.UUID) -> None:
    """A fast hash for this suite's many sign-ins (what is tested is CSRF, not scrypt)."""
    with system_scope():
        db.session.get(User, user_id).password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
        db.session.commit()


@pytest.fixture
def world(ctx, alice, bob, victor, charlie) -> World:
    from monitorapp.auth.links import invitation_token
    from monitorapp.notify import create_channel

    _cheap_password(alice.user_id)
    ids: dict[str, uuid.UUID] = {}
    team_c = make_team("Team C")
    db.session.commit()
    with system_scope():
        db.session.add(Membership(user_id=alice.user_id, tenant_id=team_c.id, role=Role.MEMBER.value))
        db.session.commit()
    ids["team_c"] = team_c.id
    with tenant_scope(alice.team_id):
        for name in ("main", "delete-form", "delete-api"):
            endpoint = Endpoint(name=f"csrf-{name}", url=f"https://93.184.216.34/{name}", created_by_id=alice.user_id)
            db.session.add(endpoint)
            db.session.flush()
            ids[f"endpoint:{name}"] = endpoint.id
        incident = Incident(endpoint_id=ids["endpoint:main"], started_at=utcnow() - timedelta(minutes=3), first_error="x")
        db.session.add(incident)
        pending = Invitation(email="pending@example.com", role=Role.MEMBER.value, invited_by_id=alice.user_id,
                             expires_at=utcnow() + timedelta(days=3))
        newcomer = Invitation(email="newcomer@example.com", role=Role.MEMBER.value, invited_by_id=alice.user_id,
                              expires_at=utcnow() + timedelta(days=3))
        db.session.add_all([pending, newcomer])
        db.session.flush()
        for name in ("main", "delete", "test"):
            channel = create_channel(name=f"csrf-{name}", kind="email", email_recipients=[str(alice.user_id)])
            ids[f"channel:{name}"] = channel.id
        memberships = {
            m.user_id: m.id for m in db.session.scalars(select(Membership).where(Membership.tenant_id == alice.team_id))
        }
        ids.update(incident=incident.id, pending_invitation=pending.id, newcomer_invitation=newcomer.id,
                   bob_membership=memberships[bob.user_id], victor_membership=memberships[victor.user_id])
        db.session.commit()
    with tenant_scope(charlie.team_id):
        to_alice = Invitation(email=alice.email, role=Role.MEMBER.value, invited_by_id=charlie.user_id,
                              expires_at=utcnow() + timedelta(days=3))
        db.session.add(to_alice)
        db.session.commit()
        ids["alice_invitation"] = to_alice.id
    make_token(alice, name="to-rotate")
    make_token(alice, name="to-revoke")
    with system_scope():
        for token in db.session.scalars(select(ApiToken).where(ApiToken.user_id == alice.user_id)):
            ids[f"token:{token.name}"] = token.id
        tokens = {
            "alice_invitation": invitation_token(ids["alice_invitation"]),
            "newcomer_invitation": invitation_token(ids["newcomer_invitation"]),
        }
    db.session.expunge_all()
    return World(alice=alice, ids=ids, team_name="Team A", tokens=tokens)


# -- what each route is sent ---------------------------------------------------------------


@dataclass
class Call:
    """One state-changing request: a path and a body that would do the route's job."""

    path: str
    form: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def _reset_token(world: World) -> str:
    """Made when sent: a reset link dies with the password it was made for."""
    from monitorapp.auth.links import reset_token

    with system_scope():
        return reset_token(db.session.get(User, world.alice.user_id))


def _current_team_name(world: World) -> str:
    with system_scope():
        return db.session.get(Tenant, world.alice.team_id).name


# Per view: the path arguments (by the names the rule uses) and the body. A new
# state-changing route fails `test_every_state_changing_route_has_a_request_here`.
CALLS: dict[str, Callable[[World], Call]] = {
    "auth.register": lambda w: Call("/register", {"email": "new-owner@example.com", "password": NEW_PASSWORD,
                                                  "team_name": "Fresh team"}),
    "auth.resend_verification": lambda w: Call("/verify/resend", {"next": "/account"}),
    "auth.login": lambda w: Call("/login", {"email": w.alice.email, "password": PASSWORD}),
    "auth.logout": lambda w: Call("/logout"),
    "auth.forgot_password": lambda w: Call("/password/forgot", {"email": w.alice.email}),
    "auth.reset_password": lambda w: Call(f"/password/reset/{_reset_token(w)}", {"password": NEW_PASSWORD}),
    "auth.change_password": lambda w: Call("/account/password", {"current_password": PASSWORD,
                                                                 "password": NEW_PASSWORD}),
    "auth.change_email": lambda w: Call("/account/email", {"email": "alice.new@example.com",
                                                           "password_check": PASSWORD}),
    "auth.sign_out_everywhere": lambda w: Call("/account/sign-out-everywhere"),
    "auth.create_token": lambda w: Call("/account/tokens", {"name": "ci", "scope": "write"}),
    "auth.revoke_token": lambda w: Call(f"/account/tokens/{w.ids['token:to-revoke']}/revoke"),
    "auth.rotate_token": lambda w: Call(f"/account/tokens/{w.ids['token:to-rotate']}/rotate"),
    "auth.new_team": lambda w: Call("/teams/new", {"name": "Another team"}),
    "auth.switch_team": lambda w: Call("/teams/switch", {"team_id": str(w.ids["team_c"])}),
    "auth.rename_team": lambda w: Call("/team/rename", {"name": "Team A renamed"}),
    "auth.invite": lambda w: Call("/team/invitations", {"email": "invitee@example.com", "role": "member"}),
    "auth.revoke_invitation": lambda w: Call(f"/team/invitations/{w.ids['pending_invitation']}/revoke"),
    "auth.change_role": lambda w: Call(f"/team/members/{w.ids['victor_membership']}/role", {"role": "member"}),
    "auth.remove_member": lambda w: Call(f"/team/members/{w.ids['bob_membership']}/remove"),
    "auth.delete_team": lambda w: Call("/team/delete", {"confirm": _current_team_name(w)}),
    "auth.accept_invitation": lambda w: Call(f"/invitations/{w.tokens['alice_invitation']}"),
    "auth.join": lambda w: Call(f"/invitations/{w.tokens['newcomer_invitation']}/join", {"password": NEW_PASSWORD}),
    "dashboard.create": lambda w: Call("/dashboard/endpoints", {"name": "new", "url": "https://93.184.216.34/new",
                                                                "interval_minutes": "5"}),
    "dashboard.edit": lambda w: Call(f"/dashboard/endpoints/{w.ids['endpoint:main']}/edit",
                                     {"name": "renamed", "url": "https://93.184.216.34/main", "interval_minutes": "7"}),
    "dashboard.delete": lambda w: Call(f"/dashboard/endpoints/{w.ids['endpoint:delete-form']}/delete"),
    "dashboard.pause": lambda w: Call(f"/dashboard/endpoints/{w.ids['endpoint:main']}/pause", {"paused": "1"}),
    "api.create_endpoint": lambda w: Call("/api/endpoints/", json={"url": "https://93.184.216.34/api"}),
    "api.update_endpoint": lambda w: Call(f"/api/endpoints/{w.ids['endpoint:main']}", json={"interval_minutes": 9}),
    "api.delete_endpoint": lambda w: Call(f"/api/endpoints/{w.ids['endpoint:delete-api']}"),
    "alerts.create_channel": lambda w: Call("/channels", {"name": "new channel", "kind": "email",
                                                          "email_recipients": str(w.alice.user_id)}),
    "alerts.edit_channel": lambda w: Call(f"/channels/{w.ids['channel:main']}/edit",
                                          {"name": "renamed channel", "kind": "email",
                                           "email_recipients": str(w.alice.user_id), "reminder_hours": "2"}),
    "alerts.toggle_channel": lambda w: Call(f"/channels/{w.ids['channel:main']}/toggle"),
    "alerts.delete_channel": lambda w: Call(f"/channels/{w.ids['channel:delete']}/delete"),
    "alerts.test_channel": lambda w: Call(f"/channels/{w.ids['channel:test']}/test"),
    "alerts.acknowledge": lambda w: Call(f"/incidents/{w.ids['incident']}/acknowledge"),
    "alerts.endpoint": lambda w: Call(f"/endpoints/{w.ids['endpoint:main']}",
                                      {"failure_threshold": "4", "recovery_threshold": "3"}),
}
# Sent last in the pass with valid tokens: nothing of alice's team is left afterwards.
LAST = ("auth.delete_team",)


def state_changing_routes(app) -> list[tuple[str, str, str]]:
    """(view, rule, method) for every state-changing method of every rule, in url_map order."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & WRITE_METHODS):
            found.append((rule.endpoint, rule.rule, method))
    return found


def _rule_matches(rule: str, path: str) -> bool:
    pattern = "[^/]+".join(re.escape(part) for part in re.split(r"<[^>]+>", rule))
    return re.fullmatch(pattern, path) is not None


# -- what "nothing changed" means -------------------------------------------------------------


def fingerprint(client, redis) -> dict[str, str]:
    """A digest of everything a request could change: every table, Redis, the outbox, the session."""
    digests = {}
    with system_scope():
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(text(f'SELECT * FROM "{table.name}"')).all()
            digests[f"table {table.name}"] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        db.session.rollback()
    keys = sorted(redis.keys("*"))
    digests["redis"] = hashlib.sha256(repr([(key, redis.dump(key)) for key in keys]).encode()).hexdigest()
    digests["outbox"] = str(len(mail.outbox))
    with client.session_transaction() as session:
        digests["session"] = repr(sorted((key, repr(value)) for key, value in session.items() if key != "_flashes"))
    return digests


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before if before[name] != after.get(name))


# -- sending -------------------------------------------------------------------------------------


def send(app, client, method: str, call: Call, token: str | None = None, header: bool = False,
         bearer: str | None = None):
    """Send `call` in an app context of its own (so no `g` is shared with the test's)."""
    headers = {}
    form = dict(call.form)
    if token is not None and (header or call.json is not None):
        headers["X-CSRFToken"] = token
    elif token is not None:
        form["csrf_token"] = token
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    with app.app_context():
        if call.json is not None:
            return client.open(call.path, method=method, json=call.json, headers=headers)
        return client.open(call.path, method=method, data=form, headers=headers)


def signed_in_client(app, actor):
    client = app.test_client()
    login(client, actor)
    with app.app_context():
        token = csrf_token(client, "/account")
    return client, token


def csrf_refusals(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == CSRF_LOGGER]


# -- tests ---------------------------------------------------------------------------------------


def test_every_state_changing_route_has_a_request_here(app, world):
    routes = state_changing_routes(app)
    missing = sorted({view for view, _, _ in routes} - set(CALLS))
    assert missing == [], "add a request for these views to CALLS: " + ", ".join(missing)
    assert sorted(set(CALLS) - {view for view, _, _ in routes}) == [], "CALLS names views that are gone"
    for view, rule, _ in routes:
        assert _rule_matches(rule, CALLS[view](world).path), (view, rule)


def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(app, world, charlie, caplog):
    caplog.set_level(logging.INFO, logger=CSRF_LOGGER)
    redis = connect(app.config["REDIS_URL"])
    client, _ = signed_in_client(app, world.alice)
    # A real token, of another person's session: valid in form, wrong for alice's session.
    _, foreign_token = signed_in_client(app, charlie)
    variants = {
        "no token": {},
        "garbage token in the form": {"token": "not-a-csrf-token"},
        "garbage token in the header": {"token": "not-a-csrf-token", "header": True},
        "another session's token in the form": {"token": foreign_token},
        "another session's token in the header": {"token": foreign_token, "header": True},
    }
    routes = state_changing_routes(app)
    refused = set()
    before = fingerprint(client, redis)
    for view, rule, method in routes:
        if (rule, method) in EXEMPT:
            continue
        for variant, options in variants.items():
            caplog.clear()
            response = send(app, client, method, CALLS[view](world), **options)
            case = f"{method} {rule} with {variant}"
            assert response.status_code == 400, (case, response.status_code)
            assert csrf_refusals(caplog), f"{case}: answered 400, but not by the CSRF check"
            if rule.startswith("/api/"):
                assert response.get_json()["error"] == "bad_request", case
            after = fingerprint(client, redis)
            assert changed(before, after) == [], f"{case} changed something"
        refused.add((rule, method))
    expected = {(rule, method) for _, rule, method in routes} - EXEMPT
    record("state-changing routes refusing a missing CSRF token", len(refused))
    assert refused == expected
    assert len(refused) == len(routes) - len(EXEMPT)


def test_a_cookie_authenticated_api_write_with_a_bogus_bearer_header_is_refused(app, world, caplog):
    """A junk Authorization header skips the CSRF check (bearer calls are exempt), so it must not fall
    back to the cookie either: 401, nothing changed."""
    redis = connect(app.config["REDIS_URL"])
    client, _ = signed_in_client(app, world.alice)
    before = fingerprint(client, redis)
    api_routes = [(view, rule, method) for view, rule, method in state_changing_routes(app) if rule.startswith("/api/")]
    assert len(api_routes) == 3
    for view, rule, method in api_routes:
        for bearer in ("mon_not-a-real-token", "garbage"):
            response = send(app, client, method, CALLS[view](world), bearer=bearer)
            assert response.status_code == 401, (method, rule, bearer, response.status_code)
            assert changed(before, fingerprint(client, redis)) == [], (method, rule, bearer)


def test_the_same_requests_with_the_right_token_pass_and_do_their_job(app, world, caplog):
    """The control: each refused request above, sent with alice's own token, passes and changes something."""
    caplog.set_level(logging.INFO, logger=CSRF_LOGGER)
    redis = connect(app.config["REDIS_URL"])
    routes = state_changing_routes(app)
    routes.sort(key=lambda route: route[0] in LAST)
    without_effect = {}
    for view, rule, method in routes:
        # Signed in afresh each time: some of these sign out, switch or delete the team.
        _cheap_password(world.alice.user_id)  # back to PASSWORD, whatever the previous request changed
        client, token = signed_in_client(app, world.alice)
        before = fingerprint(client, redis)
        caplog.clear()
        response = send(app, client, method, CALLS[view](world), token=token)
        case = f"{method} {rule}"
        assert csrf_refusals(caplog) == [], f"{case}: refused by the CSRF check despite the right token"
        assert response.status_code < 500, (case, response.status_code)
        assert response.status_code not in (400, 401, 403, 404, 405, 422), (case, response.status_code)
        difference = changed(before, fingerprint(client, redis))
        if not difference:
            without_effect[view] = case
    assert without_effect.keys() == NO_LASTING_EFFECT.keys(), without_effect
