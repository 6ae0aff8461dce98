"""The tenant walls, for every route and every API operation, for everyone.

Cases are generated, not listed: every (rule, method) of `app.url_map` and
every operation of `/api/openapi.json`, for the owner, a member and a viewer
of team A, for team B's owner and member (session, htmx and bearer token)
and for anonymous visitors, with each kind of id the route takes (one of
team A's real rows, and a random id that names nothing). The expectations:

- team A's people get what their role allows, 403 where it does not;
- team B's people get 404 for team A's ids, byte for byte the answer for an
  id that does not exist (or the same 403, where their role is refused first);
- anonymous visitors are sent to sign in (401 on the API);
- nothing team B can see (pages, fragments, lists, searches, counts, the
  audit log, the metrics, error messages) holds a trace of team A, and it
  does not change when team A's data does;
- team B's writes aimed at team A change no row of team A.

The world (tests/security/tenant_world.py) has rows in every team-owned
model, and a test proves it, so a new model cannot slip past the walls.

The requests go to a second app instance over the same database, so each
request has its own app context and session, as in production (the test's
own app context would otherwise be shared with the requests).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import Rule

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, ChannelEndpoint, Endpoint, NotificationChannel, Role, TokenScope, User
from monitorapp.queues import SCHEDULER_HEARTBEAT_KEY
from monitorapp.tenancy import TenantScoped, system_scope
from tests.conftest import Actor, csrf_token, login
from tests.figures import add, record
from tests.routes import WRITE_METHODS, fill, need, routes
from tests.security import tenant_world
from tests.security.tenant_world import KEY_ONLY, MARK, World, mark, snapshot, spare

# About 40 s on PostgreSQL: CI runs it in its PostgreSQL run (tests/test_route_matrix.py runs in both).
pytestmark = pytest.mark.slow

METRICS_TOKEN = "metrics-token-for-the-wall-suite"
# Arguments that name one person's own row: another person of the same team gets 404 too.
PERSONAL_ROWS = {"token_id"}
# The marker each kind of row shows on its own page (a 200 must be the real row).
ROW_MARKS = {
    "endpoint_id": mark("endpoint", "-0"),
    "channel_id": mark("notification_channel"),
}
STATIC_FILE = "css/app.css"
CSRF = [re.compile(r'("X-CSRFToken": ")[^"]+'), re.compile(r'(name="csrf_token" value=")[^"]+')]
UNSTABLE_HEADERS = {"Date", "Set-Cookie", "Content-Length"}


# -- the world and the server -------------------------------------------------------------


@pytest.fixture
def server(make_app, app, redis_client):
    """The app that answers the requests: a second instance over the fixture's (emptied) database.

    A fresh scheduler heartbeat makes /health/ready/ answer 200, so a 5xx anywhere is a failure.
    """
    redis_client.set(SCHEDULER_HEARTBEAT_KEY, time.time())
    return make_app(RATELIMIT_ENABLED=False, METRICS_TOKEN=METRICS_TOKEN)


@pytest.fixture
def world(ctx, alice, bob, victor, charlie) -> World:
    return tenant_world.build(alice, bob, victor, charlie)


# -- who asks ---------------------------------------------------------------------------------


@dataclass
class Visitor:
    """One way of asking: a person with a session or a token, or nobody."""

    label: str
    client: FlaskClient
    actor: Actor | None = None
    bearer: str | None = None  # sent on /api/ paths; a bearer-only visitor asks only there
    scope: TokenScope = TokenScope.WRITE
    htmx: bool = False
    session: bool = True
    csrf: str | None = None

    @property
    def role(self) -> Role | None:
        return self.actor.role if self.actor else None

    def sign_in(self) -> Visitor:
        if self.actor is not None and self.session:
            login(self.client, self.actor)
            self.csrf = csrf_token(self.client, "/account")
        return self

    def asks(self, path: str) -> bool:
        return self.session or path.startswith("/api/")

    def may(self, needed: str, path: str) -> bool:
        if needed == "public":
            return True
        if self.actor is None:
            return False
        by_token = path.startswith("/api/") and self.bearer is not None
        if needed == "write":
            return self.role.can_write and not (by_token and self.scope is TokenScope.READ)
        if needed == "owner":
            return self.role is Role.OWNER and not by_token
        return True

    def send(self, method: str, path: str, data: dict | None = None, json: dict | None = None):
        api = path.startswith("/api/")
        headers = {}
        if self.htmx:
            headers["HX-Request"] = "true"
        if api and self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        if self.csrf:
            headers["X-CSRFToken"] = self.csrf
        if json is not None or (api and method in ("POST", "PATCH", "PUT") and data is None):
            return self.client.open(path, method=method, json=json if json is not None else {}, headers=headers)
        return self.client.open(path, method=method, data=data or {}, headers=headers)

    def stay_signed_in(self) -> None:
        """Sign in again after a case that ended this session or another of the same person's.

        Signing out, "sign out everywhere" and the like are cases too; the next
        case must again be asked by someone signed in.
        """
        if self.actor is None or not self.session:
            return
        with self.client.session_transaction() as session:
            signed_in_as, has_csrf = session.get("_user_id"), "csrf_token" in session
        version = db.session.scalar(select(User.session_version).where(User.id == self.actor.user_id))
        db.session.rollback()
        if signed_in_as != f"{self.actor.user_id}:{version}" or not has_csrf:
            self.sign_in()


def person(server, label: str, actor: Actor, htmx: bool = False) -> Visitor:
    return Visitor(label, server.test_client(), actor, htmx=htmx).sign_in()


def bearer(server, label: str, actor: Actor, secret: str, scope: TokenScope = TokenScope.WRITE) -> Visitor:
    return Visitor(label, server.test_client(), actor, bearer=secret, scope=scope, session=False)


def nobody(server, htmx: bool = False) -> Visitor:
    return Visitor("anonymous (htmx)" if htmx else "anonymous", server.test_client(), htmx=htmx)


# -- cases ------------------------------------------------------------------------------------


def id_kinds(rule: Rule) -> list[str]:
    """The kinds of value each route is asked with."""
    if not rule.arguments:
        return ["none"]
    if "token" in rule.arguments:
        return ["forged link"]
    if "filename" in rule.arguments:
        return ["file"]
    return ["alice's", "missing"]


def values_for(rule: Rule, kind: str, ids: dict[str, uuid.UUID], missing: uuid.UUID) -> dict:
    if kind == "forged link":
        return {"token": "forged.link.value"}
    if kind == "file":
        return {"filename": STATIC_FILE}
    if kind == "missing":
        return {name: missing for name in rule.arguments}
    return {name: ids[name] for name in rule.arguments}


def normalised(response, *ids) -> str:
    """Status, headers and body, with per-request tokens and the ids asked for taken out."""
    body = response.get_data(as_text=True)
    for pattern in CSRF:
        body = pattern.sub(r"\1<csrf>", body)
    headers = sorted((name, value) for name, value in response.headers if name not in UNSTABLE_HEADERS)
    text = repr((response.status_code, "Set-Cookie" in response.headers, headers, body))
    for value in ids:
        text = text.replace(str(value), "<id>")
    return text


def leaks(response, secrets: list[str], asked: str = "") -> list[str]:
    """The secrets in the response that the request did not itself carry (a `next=` may repeat the path)."""
    text = response.get_data(as_text=True) + "\n".join(f"{name}: {value}" for name, value in response.headers)
    return [secret for secret in secrets if secret in text and secret not in asked]


def is_sign_in(response, path: str) -> bool:
    if path.startswith("/api/"):
        return response.status_code == 401 and response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    if response.headers.get("HX-Redirect"):
        return response.status_code == 200 and response.headers["HX-Redirect"].startswith("/login?next=")
    return response.status_code == 302 and "/login?next=" in response.headers.get("Location", "")


def team_routes(app) -> Iterator[tuple[Rule, str, str]]:
    for rule, method in routes(app):
        yield rule, method, need(app, rule, method)


def count_cases(app, visitors: list[Visitor]) -> int:
    """How many (route, visitor, id) cases the URL map calls for: computed apart from the loops that run them."""
    total = 0
    for rule, _method in routes(app):
        askers = sum(1 for visitor in visitors if visitor.asks(rule.rule))
        total += askers * len(id_kinds(rule))
    return total


# -- the world covers every team-owned model --------------------------------------------------


def test_the_world_has_rows_of_every_team_owned_model_in_both_teams(server, world):
    tables = tenant_world.team_tables()
    scoped = {mapper.local_table for mapper in db.Model.registry.mappers if issubclass(mapper.class_, TenantScoped)}
    # A table with tenant_id that the row filter does not know is a table without a wall.
    assert set(tables) == scoped
    secrets = world.secrets()
    with system_scope():
        for table in tables:
            for team in (world.team_a, world.team_b):
                rows = db.session.execute(select(table).where(table.c.tenant_id == team)).mappings().all()
                assert rows, f"the world has no {table.name} row in team {team}: add one to tests/security/tenant_world.py"
            rows = db.session.execute(select(table).where(table.c.tenant_id == world.team_a)).mappings().all()
            text = repr([dict(row) for row in rows])
            if table.name in KEY_ONLY:
                assert any(str(value) in secrets for row in rows for value in row.values())
            else:
                assert mark(table.name) in text, f"team A's {table.name} rows carry no {mark(table.name)} marker"
    db.session.rollback()
    arguments = {name for rule in server.url_map.iter_rules() for name in re.findall(r"<uuid:(\w+)>", rule.rule)}
    assert arguments <= set(world.ids) and arguments <= set(world.b_ids)
    for argument in arguments:
        assert spare(world, argument)


# -- anonymous ----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_for_every_route_and_id(server, world):
    visitors = [nobody(server), nobody(server, htmx=True)]
    secrets = world.secrets()
    before = snapshot(world.team_a)
    cases = 0
    for rule, method, needed in team_routes(server):
        missing = uuid.uuid4()
        for kind in id_kinds(rule):
            path = fill(rule, values_for(rule, kind, world.ids, missing))
            for visitor in visitors:
                response = visitor.send(method, path)
                cases += 1
                where = (visitor.label, method, path, response.status_code)
                assert response.status_code < 500, where
                assert not leaks(response, secrets, path), where
                if needed == "public":
                    continue
                assert is_sign_in(response, path), where
                if kind == "alice's":
                    baseline = visitor.send(method, fill(rule, values_for(rule, "missing", world.ids, missing)))
                    assert normalised(response, *world.ids.values(), missing) == normalised(baseline, missing), where
    assert cases == count_cases(server, visitors)
    assert snapshot(world.team_a) == before
    add("tenant-wall cases", cases)


# -- team B against team A's ids --------------------------------------------------------------


def test_another_team_finds_none_of_team_a_and_changes_none_of_it(server, world):
    visitors = [
        person(server, "other-team owner", world.charlie),
        person(server, "other-team owner (htmx)", world.charlie, htmx=True),
        person(server, "other-team member", world.dave),
        bearer(server, "other-team owner (token)", world.charlie, world.tokens["charlie"]),
        bearer(server, "other-team member (token)", world.dave, world.tokens["dave"]),
    ]
    secrets = world.secrets()
    before = snapshot(world.team_a)
    cases = 0
    for rule, method, needed in team_routes(server):
        missing = uuid.uuid4()
        for kind in id_kinds(rule):
            if kind == "missing":
                continue  # asked beside alice's id, below
            path = fill(rule, values_for(rule, kind, world.ids, missing))
            for visitor in visitors:
                if not visitor.asks(path):
                    continue
                response = visitor.send(method, path)
                cases += 1
                where = (visitor.label, method, path, response.status_code)
                assert response.status_code < 500, where
                assert not leaks(response, secrets, path), where
                if kind == "alice's":
                    expected = 404 if visitor.may(needed, path) else 403
                    assert response.status_code == expected, where
                    baseline = visitor.send(method, fill(rule, values_for(rule, "missing", world.ids, missing)))
                    cases += 1
                    assert not leaks(baseline, secrets, path), where
                    assert normalised(response, *world.ids.values(), missing) == normalised(baseline, missing), where
                elif needed != "public":
                    assert (response.status_code not in (401, 403)) == visitor.may(needed, path), where
                for each in visitors:
                    each.stay_signed_in()
    assert cases == count_cases(server, visitors)
    assert cases >= 3 * sum(1 for _ in routes(server)), "every route is asked by several of team B's visitors"
    assert snapshot(world.team_a) == before, "a request of team B changed team A's rows"
    add("tenant-wall cases", cases)
    record("tenant-wall routes (rule × method)", sum(1 for _ in routes(server)))


# -- team A's own people: the roles ------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "member", "viewer"])
def test_team_a_gets_what_its_role_allows_and_403_for_the_rest(server, world, who):
    actor = {"owner": world.alice, "member": world.bob, "viewer": world.victor}[who]
    token_name = {"owner": "alice", "member": "bob", "viewer": "victor"}[who]
    scope = TokenScope.READ if who == "viewer" else TokenScope.WRITE
    visitors = [
        person(server, who, actor),
        bearer(server, f"{who} (token)", actor, world.tokens[token_name], scope),
    ]
    cases = 0
    for rule, method, needed in team_routes(server):
        missing = uuid.uuid4()
        for kind in id_kinds(rule):
            for visitor in visitors:
                values = values_for(rule, kind, world.ids, missing)
                path = fill(rule, values)
                if not visitor.asks(path):
                    continue
                allowed = visitor.may(needed, path)
                own = not (set(rule.arguments) & PERSONAL_ROWS) or actor is world.alice
                if kind == "alice's" and allowed and own and method in WRITE_METHODS:
                    # A permitted write really happens: aim it at a spare row of team A.
                    path = fill(rule, {name: spare(world, name) for name in rule.arguments})
                response = visitor.send(method, path)
                cases += 1
                where = (visitor.label, method, path, response.status_code)
                assert response.status_code < 500, where
                if kind == "missing":
                    assert response.status_code == (404 if allowed else 403), where
                elif kind == "alice's" and not allowed:
                    assert response.status_code == 403, where
                    baseline = visitor.send(method, fill(rule, values_for(rule, "missing", world.ids, missing)))
                    assert normalised(response, *values.values()) == normalised(baseline, missing), where
                elif kind == "alice's" and not own:
                    # Someone else's token in the same team is not found either.
                    assert response.status_code == 404, where
                    baseline = visitor.send(method, fill(rule, values_for(rule, "missing", world.ids, missing)))
                    assert normalised(response, *values.values()) == normalised(baseline, missing), where
                elif kind == "alice's":
                    assert response.status_code not in (401, 403, 404), where
                    mark_of_row = ROW_MARKS.get(next(iter(rule.arguments)))
                    if method == "GET" and response.status_code == 200 and mark_of_row:
                        assert mark_of_row in response.get_data(as_text=True), where
                elif needed != "public":
                    assert (response.status_code not in (401, 403)) == allowed, where
                visitor.stay_signed_in()
    assert cases == count_cases(server, visitors)
    add("tenant-wall cases", cases)


# -- the OpenAPI document's operations --------------------------------------------------------


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method.upper(), operation


def test_every_api_operation_keeps_to_its_team(server, world):
    document = server.test_client().get("/api/openapi.json").get_json()
    adapter = server.url_map.bind("localhost")
    api_rules = {(rule.endpoint, method) for rule, method in routes(server) if rule.rule.startswith("/api/endpoints")}
    secrets = world.secrets()
    visitors = [
        bearer(server, "owner (token)", world.alice, world.tokens["alice"]),
        bearer(server, "member (token)", world.bob, world.tokens["bob"]),
        bearer(server, "viewer (token)", world.victor, world.tokens["victor"], TokenScope.READ),
        bearer(server, "other-team owner (token)", world.charlie, world.tokens["charlie"]),
        bearer(server, "other-team member (token)", world.dave, world.tokens["dave"]),
        nobody(server),
    ]
    cases, covered = 0, set()
    for template, method, operation in operations(document):
        missing = uuid.uuid4()
        endpoint_name, _ = adapter.match(template.replace("{endpoint_id}", str(missing)), method=method)
        covered.add((endpoint_name, method))
        needed = need(server, next(server.url_map.iter_rules(endpoint_name)), method)
        documented = set(operation["responses"])
        kinds = ["alice's", "missing"] if "{endpoint_id}" in template else ["none"]
        for kind in kinds:
            for visitor in visitors:
                team_a = visitor.actor is not None and visitor.actor.team_id == world.team_a
                allowed = visitor.may(needed, template)
                target = {"alice's": world.ids["endpoint_id"], "missing": missing}.get(kind)
                if kind == "alice's" and team_a and allowed and method != "GET":
                    target = spare(world, "endpoint_id")
                path = template.replace("{endpoint_id}", str(target))
                response = visitor.send(method, path)
                cases += 1
                where = (visitor.label, method, path, response.status_code)
                assert str(response.status_code) in documented, where
                if visitor.actor is None:
                    assert response.status_code == 401, where
                elif not allowed:
                    assert response.status_code == 403, where
                elif kind == "missing" or (kind == "alice's" and not team_a):
                    assert response.status_code == 404, where
                    assert response.get_json()["error"] == "not_found", where
                else:
                    assert response.status_code in (200, 201, 204, 400), where
                    if kind == "alice's" and method == "GET":
                        assert response.get_json()["name"] == mark("endpoint", "-0"), where
                if not team_a:
                    assert not leaks(response, secrets, path), where
                if kind == "alice's" and not team_a:
                    baseline = visitor.send(method, template.replace("{endpoint_id}", str(missing)))
                    assert normalised(response, target, missing) == normalised(baseline, missing), where
    assert covered == api_rules, "the OpenAPI document and the URL map disagree about the API"
    assert cases == len(visitors) * sum(
        2 if "{endpoint_id}" in template else 1 for template, _, _ in operations(document)
    )
    with system_scope():
        # The team B writes that were let through (create with an empty body) made nothing either.
        assert db.session.scalar(select(func.count()).select_from(Endpoint).where(
            Endpoint.tenant_id == world.team_b)) == world.b_endpoints
    db.session.rollback()
    add("tenant-wall cases", cases)
    record("tenant-wall OpenAPI operations", len(covered))


# -- ids of team A inside forms and bodies ----------------------------------------------------


def test_team_a_ids_inside_forms_are_not_found_either(server, world):
    charlie = person(server, "other-team owner", world.charlie)
    api = bearer(server, "other-team owner (token)", world.charlie, world.tokens["charlie"])
    before = snapshot(world.team_a)
    with system_scope():
        a_endpoints = [str(i) for i in db.session.scalars(select(Endpoint.id).where(Endpoint.tenant_id == world.team_a))]
        a_urls = list(db.session.scalars(select(Endpoint.url).where(Endpoint.tenant_id == world.team_a)))
    db.session.rollback()
    a_people = [str(world.alice.user_id), str(world.bob.user_id), str(world.victor.user_id)]
    fake_endpoints = [str(uuid.uuid4()) for _ in a_endpoints]
    fake_people = [str(uuid.uuid4()) for _ in a_people]
    cases = 0

    def same(method: str, path: str, foreign: dict, fake: dict, ids: list[str]) -> None:
        nonlocal cases
        first = charlie.send(method, path, data=foreign)
        second = charlie.send(method, path, data=fake)
        cases += 2
        assert first.status_code < 500 and MARK not in first.get_data(as_text=True), (path, first.status_code)
        assert normalised(first, *ids) == normalised(second, *ids), path

    ids = a_endpoints + fake_endpoints + a_people + fake_people + [str(world.team_a)]
    team_b_id = str(uuid.uuid4())
    same("POST", "/teams/switch", {"team_id": str(world.team_a)}, {"team_id": team_b_id}, ids + [team_b_id])
    channel = {"name": "charlie-pager", "kind": "email", "all_endpoints": "0", "reminder_hours": "0"}
    same("POST", "/channels", {**channel, "email_recipients": a_people, "endpoint_ids": a_endpoints},
         {**channel, "email_recipients": fake_people, "endpoint_ids": fake_endpoints}, ids)
    edit = f"/channels/{world.b_ids['channel_id']}/edit"
    same("POST", edit, {**channel, "email_recipients": a_people, "endpoint_ids": a_endpoints},
         {**channel, "email_recipients": fake_people, "endpoint_ids": fake_endpoints}, ids)
    # Charlie may monitor the very URLs alice monitors: no "already monitored" that would betray them.
    for url in a_urls[:2]:
        created = api.send("POST", "/api/endpoints/", json={"url": url, "name": "charlie-copy"})
        cases += 1
        assert created.status_code == 201, created.get_json()
    # Inviting one of team A's people is no different from inviting a stranger.
    for email in ("bob@example.com", "nobody-here@example.com"):
        invited = charlie.send("POST", "/team/invitations", data={"email": email, "role": "viewer"})
        cases += 1
        assert (invited.status_code, invited.headers.get("Location")) == (303, "/team"), email
    with system_scope():
        links = db.session.scalars(select(ChannelEndpoint).where(ChannelEndpoint.tenant_id == world.team_b)).all()
        assert all(link.endpoint_id in {world.b_ids["endpoint_id"]} for link in links)
        recipients = db.session.scalars(
            select(NotificationChannel.email_recipients).where(NotificationChannel.tenant_id == world.team_b)
        ).all()
        assert not any(person_id in str(recipients) for person_id in a_people)
    db.session.rollback()
    assert snapshot(world.team_a) == before
    add("tenant-wall cases", cases)


# -- what team B sees ----------------------------------------------------------------------------


def charlie_views(server, world: World) -> list[tuple[Visitor, str]]:
    """Every page, fragment, list, search and count charlie can read, by session, htmx and token."""
    session = person(server, "charlie", world.charlie)
    htmx = person(server, "charlie (htmx)", world.charlie, htmx=True)
    token = bearer(server, "charlie (token)", world.charlie, world.tokens["charlie"])
    own = world.b_ids
    paths = [rule.rule for rule, method in routes(server) if method == "GET" and not rule.arguments]
    paths += [
        "/dashboard?q=secret", "/dashboard?q=alice", "/dashboard?q=93.184", "/dashboard?status=down",
        "/dashboard?status=up", "/dashboard?status=paused", "/dashboard?status=pending", "/dashboard?page=2",
        "/incidents?state=open", "/incidents?state=resolved", "/incidents?page=2", "/team/audit?page=2",
        f"/endpoints/{own['endpoint_id']}", f"/endpoints/{own['endpoint_id']}/checks",
        f"/dashboard/endpoints/{own['endpoint_id']}/edit", f"/dashboard/endpoints/{own['endpoint_id']}/delete",
        f"/channels/{own['channel_id']}/edit",
        "/api/endpoints/?search=secret", "/api/endpoints/?search=93.184", "/api/endpoints/?status=down",
        "/api/endpoints/?page_size=1", "/api/endpoints/?page=2&page_size=1", "/api/endpoints/?page=9",
        f"/api/endpoints/{own['endpoint_id']}",
    ]
    views = []
    for path in paths:
        if path.startswith("/static") or path == "/metrics/":
            continue
        for visitor in (session, htmx, token):
            if visitor.asks(path) and (visitor.bearer is None or path.startswith("/api/")):
                views.append((visitor, path))
    return views


def read_all(views: list[tuple[Visitor, str]]) -> list[str]:
    return [normalised(visitor.send("GET", path)) for visitor, path in views]


def test_nothing_team_b_reads_holds_a_trace_of_team_a(server, world):
    secrets = world.secrets()
    views = charlie_views(server, world)
    for visitor, path in views:
        response = visitor.send("GET", path)
        assert response.status_code in (200, 302, 303), (visitor.label, path, response.status_code)
        assert not leaks(response, secrets), (visitor.label, path, leaks(response, secrets))
    token = bearer(server, "charlie (token)", world.charlie, world.tokens["charlie"])
    listing = token.send("GET", "/api/endpoints/").get_json()
    assert listing["count"] == world.b_endpoints == len(listing["results"])
    assert token.send("GET", "/api/endpoints/?search=secret").get_json()["count"] == 0
    page = person(server, "charlie", world.charlie).send("GET", "/dashboard").get_data(as_text=True)
    assert re.search(r">1 up<.*>1 down<.*>0 pending<.*>0 paused<.*>0 open incidents<", page, re.S), "banner counts"
    assert f"of {world.b_endpoints}<" in page
    audit = person(server, "charlie", world.charlie).send("GET", "/team/audit").get_data(as_text=True)
    with system_scope():
        b_events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.tenant_id == world.team_b))
    db.session.rollback()
    assert f"· {b_events} events" in audit
    add("tenant-wall cases", len(views))


def test_what_team_b_reads_does_not_move_when_team_a_changes(server, world, redis_client):
    """Non-interference: charlie's every view is the same, byte for byte, whatever team A holds.

    Read, add a lot to team A, read, take it away, read: the two reads with the
    same team A must agree (else the clock moved something: try again), and
    then the read with more of team A must agree with them. Each read starts
    from an empty Redis (no cached count can hide a change) and lets alice read
    her own pages first (a cache shared across teams would hand hers on).
    """
    alice = [(person(server, "alice", world.alice), path)
             for path in ("/dashboard", "/incidents", "/channels", "/team/audit", "/team")]
    alice.append((bearer(server, "alice (token)", world.alice, world.tokens["alice"]), "/api/endpoints/"))
    # Health answers say how old the scheduler's heartbeat is: not team data, and not stable.
    views = [(visitor, path) for visitor, path in charlie_views(server, world) if not path.startswith("/health/")]

    def read() -> list[str]:
        redis_client.flushdb()
        read_all(alice)
        return read_all(views)

    read()  # the first use of a token stamps its "last used" on the account page
    for _attempt in range(3):
        quiet = read()
        added = tenant_world.add_noise(world)
        busy = read()
        tenant_world.remove_noise(world, added)
        quiet_again = read()
        if quiet == quiet_again:
            break
    else:
        pytest.fail("charlie's views changed between two reads with the same data three times over")
    changed = [path for (visitor, path), a, b in zip(views, quiet, busy, strict=True) if a != b]
    assert changed == [], f"team A's data shows through on: {changed}"
    add("tenant-wall cases", 2 * len(views))


def test_the_metrics_name_no_team_and_nothing_of_one(server, world):
    client = server.test_client()
    response = client.get("/metrics/", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    b_secrets = [str(world.team_b), "charlie", str(world.b_ids["endpoint_id"])]
    assert not [secret for secret in world.secrets() + b_secrets if secret in text]
    labels = set(re.findall(r"[{,]([a-z_]+)=", text))
    assert labels <= {"status", "queue", "result", "le"}, labels
    # A team's token is not the metrics token: charlie's bearer gets the same 401 as nobody.
    for secret in (world.tokens["charlie"], "wrong"):
        refused = client.get("/metrics/", headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 401 and not leaks(refused, world.secrets())
    add("tenant-wall cases", 3)
