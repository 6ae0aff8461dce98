"""Two teams with rows in every team-owned model, for the tenant-wall suite.

Team A (alice owner, bob member, victor viewer) is the one under attack: every
free-text field of its rows carries `alice-secret-<table>`, and its team is
called `alice-secret-team`, so a leak is one substring search away. Team B
(charlie owner, dave member) is the stranger; its rows are dated days ago so
the pages charlie sees do not change from one second to the next.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Table, select, update

from monitorapp.extensions import db
from monitorapp.models import (
    ApiToken,
    AuditEvent,
    ChannelEndpoint,
    CheckResult,
    CheckRollup,
    Endpoint,
    Incident,
    Invitation,
    Membership,
    NotificationChannel,
    NotificationDelivery,
    Role,
    Tenant,
    TokenScope,
    User,
    utcnow,
)
from monitorapp.notify.secrets import encrypt, mask
from monitorapp.tenancy import system_scope
from tests.conftest import Actor, make_token, make_user

MARK = "alice-secret"
# Team-owned tables whose rows hold no free text: their keys (ids) are the markers.
KEY_ONLY = {"membership", "check_rollup", "channel_endpoint"}
_spares = itertools.count(1)


def mark(table: str, suffix: str = "") -> str:
    return f"{MARK}-{table}{suffix}"


def team_tables() -> list[Table]:
    """Every table with a `tenant_id` column: the rows a team owns."""
    return [table for table in db.metadata.sorted_tables if "tenant_id" in table.c]


@dataclass
class World:
    alice: Actor
    bob: Actor
    victor: Actor
    charlie: Actor
    dave: Actor
    # Route argument name -> a row of alice's team (and of charlie's).
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    b_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    # Bearer secrets: alice, bob, victor (read only), charlie, dave.
    tokens: dict[str, str] = field(default_factory=dict)
    b_endpoints: int = 0
    b_audit_events: int = 0

    @property
    def team_a(self) -> uuid.UUID:
        return self.alice.team_id

    @property
    def team_b(self) -> uuid.UUID:
        return self.charlie.team_id

    def secrets(self) -> list[str]:
        """What no response to team B may contain: markers, team A's ids, emails and token prefixes."""
        found = {MARK, "alice@example.com", "bob@example.com", "victor@example.com", str(self.team_a)}
        with system_scope():
            for table in team_tables():
                for row in db.session.execute(select(table).where(table.c.tenant_id == self.team_a)).mappings():
                    found.update(str(value) for value in row.values() if isinstance(value, uuid.UUID))
            found.update(
                db.session.scalars(select(ApiToken.prefix).where(ApiToken.tenant_id == self.team_a))
            )
        db.session.rollback()
        return sorted(found)


def build(alice: Actor, bob: Actor, victor: Actor, charlie: Actor) -> World:
    """Fill both teams; alice's rows are marked, charlie's are dated days ago."""
    dave_user = make_user("dave@example.com", db.session.get(Tenant, charlie.team_id), Role.MEMBER)
    dave = Actor(dave_user.id, "dave@example.com", charlie.team_id, Role.MEMBER)
    world = World(alice, bob, victor, charlie, dave)
    world.tokens = {
        "alice": make_token(alice, TokenScope.WRITE, name=mark("api_token")),
        "bob": make_token(bob, TokenScope.WRITE, name=mark("api_token", "-bob")),
        "victor": make_token(victor, TokenScope.READ, name=mark("api_token", "-victor")),
        "charlie": make_token(charlie, TokenScope.WRITE, name="charlie-token"),
        "dave": make_token(dave, TokenScope.WRITE, name="dave-token"),
    }
    with system_scope():
        db.session.execute(update(Tenant).where(Tenant.id == alice.team_id).values(name=mark("team")))
        world.ids = _fill_team_a(alice, bob)
        world.b_ids = _fill_team_b(charlie)
        world.ids["token_id"] = db.session.scalars(
            select(ApiToken.id).where(ApiToken.user_id == alice.user_id)
        ).one()
        world.b_ids["token_id"] = db.session.scalars(
            select(ApiToken.id).where(ApiToken.user_id == charlie.user_id)
        ).one()
        world.ids["membership_id"] = _membership_id(bob)
        world.b_ids["membership_id"] = _membership_id(dave)
        db.session.commit()
        world.b_endpoints = len(db.session.scalars(select(Endpoint.id).where(Endpoint.tenant_id == charlie.team_id)).all())
        world.b_audit_events = len(
            db.session.scalars(select(AuditEvent.id).where(AuditEvent.tenant_id == charlie.team_id)).all()
        )
    db.session.expunge_all()
    return world


def _membership_id(actor: Actor) -> uuid.UUID:
    return db.session.scalars(
        select(Membership.id).where(Membership.user_id == actor.user_id, Membership.tenant_id == actor.team_id)
    ).one()


def _fill_team_a(alice: Actor, bob: Actor) -> dict[str, uuid.UUID]:
    team, now = alice.team_id, utcnow()
    ids: dict[str, uuid.UUID] = {}
    # Endpoints: 3 down, 2 up, 1 paused, 1 pending (team B's counts differ everywhere).
    statuses = ["down", "down", "down", "up", "up", "pending", "up"]
    endpoints = []
    for number, status in enumerate(statuses):
        endpoint = Endpoint(
            id=uuid.uuid4(),
            tenant_id=team,
            name=mark("endpoint", f"-{number}"),
            url=f"https://93.184.216.34/{mark('endpoint')}-{number}",
            status=status,
            paused=number == 6,
            last_status_code=500 if status == "down" else 200,
            last_latency_ms=123,
            last_checked_at=now - timedelta(minutes=2),
            last_error=mark("endpoint", "-error") if status == "down" else None,
            created_at=now - timedelta(hours=number + 1),
            created_by_id=alice.user_id,
            consecutive_failures=3 if status == "down" else 0,
        )
        endpoints.append(endpoint)
    db.session.add_all(endpoints)
    db.session.flush()
    main = endpoints[0]
    ids["endpoint_id"] = main.id
    db.session.add_all(
        CheckResult(
            tenant_id=team,
            endpoint_id=main.id,
            checked_at=now - timedelta(minutes=minutes),
            ok=False,
            status_code=500,
            latency_ms=100 + minutes,
            error_kind="http_status",
            message=mark("check_result"),
        )
        for minutes in (2, 7, 12)
    )
    db.session.add(
        CheckRollup(tenant_id=team, endpoint_id=main.id, day=now.date() - timedelta(days=1), checks=288,
                    failures=17, downtime_seconds=5100, avg_latency_ms=140.0, p95_latency_ms=300.0)
    )
    incidents = [
        Incident(id=uuid.uuid4(), tenant_id=team, endpoint_id=endpoint.id, started_at=now - timedelta(minutes=20 + n),
                 first_error=mark("incident"), failed_checks=3)
        for n, endpoint in enumerate(endpoints[:3])
    ]
    incidents.append(
        Incident(id=uuid.uuid4(), tenant_id=team, endpoint_id=endpoints[3].id, started_at=now - timedelta(days=2),
                 resolved_at=now - timedelta(days=2) + timedelta(minutes=9), first_error=mark("incident", "-old"),
                 failed_checks=2)
    )
    db.session.add_all(incidents)
    ids["incident_id"] = incidents[0].id
    email_channel = NotificationChannel(
        id=uuid.uuid4(), tenant_id=team, name=mark("notification_channel"), kind="email",
        email_recipients=[str(bob.user_id)], target_hint="1 recipient(s)", all_endpoints=False,
        last_error=mark("notification_channel", "-error"),
    )
    hook = f"https://{mark('notification_channel')}-hook.invalid/x/TOKEN"
    webhook = NotificationChannel(
        id=uuid.uuid4(), tenant_id=team, name=mark("notification_channel", "-webhook"), kind="webhook",
        target_encrypted=encrypt(hook), target_hint=mask(hook), failing=True,
    )
    db.session.add_all([email_channel, webhook])
    db.session.flush()
    ids["channel_id"] = email_channel.id
    db.session.add(ChannelEndpoint(tenant_id=team, channel_id=email_channel.id, endpoint_id=main.id))
    db.session.add(
        NotificationDelivery(
            tenant_id=team, channel_id=email_channel.id, event_key=mark("notification_delivery"),
            incident_id=incidents[0].id, payload={"title": mark("notification_delivery")}, status="failed",
            attempts=3, last_error=mark("notification_delivery", "-error"),
        )
    )
    invitation = Invitation(
        id=uuid.uuid4(), tenant_id=team, email=f"{mark('invitation')}@example.com", role=Role.MEMBER.value,
        invited_by_id=alice.user_id, expires_at=now + timedelta(days=3),
    )
    db.session.add(invitation)
    ids["invitation_id"] = invitation.id
    db.session.add_all(
        AuditEvent(tenant_id=team, actor_id=alice.user_id, action="endpoint.created",
                   target=mark("audit_event", f"-{n}"), ip="203.0.113.7", detail={"note": mark("audit_event")})
        for n in range(3)
    )
    db.session.flush()
    return ids


def _fill_team_b(charlie: Actor) -> dict[str, uuid.UUID]:
    """One of everything, dated three days ago (nothing on charlie's pages says "just now")."""
    team = charlie.team_id
    then = (utcnow() - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    up = Endpoint(id=uuid.uuid4(), tenant_id=team, name="charlie-shop", url="https://shop.charlie.example/",
                  status="up", last_status_code=200, last_latency_ms=80, last_checked_at=then, created_at=then,
                  created_by_id=charlie.user_id, updated_at=then)
    down = Endpoint(id=uuid.uuid4(), tenant_id=team, name="charlie-blog", url="https://blog.charlie.example/",
                    status="down", last_status_code=503, last_checked_at=then, last_error="HTTP 503",
                    created_at=then - timedelta(hours=1), created_by_id=charlie.user_id, updated_at=then)
    db.session.add_all([up, down])
    db.session.flush()
    db.session.add(CheckResult(tenant_id=team, endpoint_id=up.id, checked_at=then, ok=True, status_code=200,
                               latency_ms=80))
    db.session.add(CheckRollup(tenant_id=team, endpoint_id=up.id, day=then.date(), checks=288, failures=0,
                               downtime_seconds=0, avg_latency_ms=80.0, p95_latency_ms=90.0))
    incident = Incident(id=uuid.uuid4(), tenant_id=team, endpoint_id=down.id, started_at=then - timedelta(hours=2),
                        resolved_at=then - timedelta(hours=1), first_error="HTTP 503", failed_checks=2)
    db.session.add(incident)
    channel = NotificationChannel(id=uuid.uuid4(), tenant_id=team, name="charlie-mail", kind="email",
                                  email_recipients=[str(charlie.user_id)], target_hint="1 recipient(s)",
                                  all_endpoints=False, created_at=then)
    db.session.add(channel)
    db.session.flush()
    db.session.add(ChannelEndpoint(tenant_id=team, channel_id=channel.id, endpoint_id=up.id))
    db.session.add(NotificationDelivery(tenant_id=team, channel_id=channel.id, event_key="charlie-event",
                                        incident_id=incident.id, payload={"title": "charlie"}, status="sent",
                                        attempts=1, created_at=then, sent_at=then))
    invitation = Invitation(id=uuid.uuid4(), tenant_id=team, email="charlie-invitee@example.com",
                            role=Role.VIEWER.value, invited_by_id=charlie.user_id, created_at=then,
                            expires_at=utcnow() + timedelta(days=3))
    db.session.add(invitation)
    db.session.add(AuditEvent(tenant_id=team, actor_id=charlie.user_id, action="endpoint.created",
                              target="charlie-shop", created_at=then))
    db.session.flush()
    return {"endpoint_id": up.id, "incident_id": incident.id, "channel_id": channel.id,
            "invitation_id": invitation.id}


# -- spares: rows of team A that a permitted write may change or delete ----------------------


def spare(world: World, argument: str) -> uuid.UUID:
    """A fresh row of team A for `argument`, so a permitted write leaves the world's own rows alone."""
    team, n, now = world.team_a, next(_spares), utcnow()
    with system_scope():
        if argument == "token_id":
            token = ApiToken(tenant_id=team, user_id=world.alice.user_id, name=mark("api_token", f"-spare-{n}"),
                             prefix=f"mon_s{n:05d}", token_hash=uuid.uuid4().hex * 2, scope="write")
            row = token
        elif argument == "invitation_id":
            row = Invitation(tenant_id=team, email=f"spare-{n}@example.com", role="member",
                             expires_at=now + timedelta(days=3))
        elif argument == "membership_id":
            hashed = db.session.scalars(select(User.password_hash).where(User.id == world.alice.user_id)).one()
            user = User(email=f"spare-{n}@example.com", password_hash=hashed, email_verified_at=now)
            db.session.add(user)
            db.session.flush()
            row = Membership(tenant_id=team, user_id=user.id, role=Role.MEMBER.value)
        elif argument == "channel_id":
            row = NotificationChannel(tenant_id=team, name=mark("notification_channel", f"-spare-{n}"), kind="email",
                                      email_recipients=[str(world.bob.user_id)], target_hint="1 recipient(s)")
        elif argument in ("endpoint_id", "incident_id"):
            row = Endpoint(tenant_id=team, name=mark("endpoint", f"-spare-{n}"),
                           url=f"https://spare-{n}.example/", status="down")
            if argument == "incident_id":
                db.session.add(row)
                db.session.flush()
                row = Incident(tenant_id=team, endpoint_id=row.id, started_at=now, first_error=mark("incident"))
        else:
            raise AssertionError(f"no spare for <{argument}>: teach tests/security/tenant_world.py to make one")
        db.session.add(row)
        db.session.commit()
        row_id = row.id
    db.session.expunge_all()
    return row_id


def snapshot(team_id: uuid.UUID) -> dict[str, list[str]]:
    """Every row the team owns, its team row and its people, as comparable text."""
    state: dict[str, list[str]] = {}
    with system_scope():
        for table in team_tables():
            rows = db.session.execute(select(table).where(table.c.tenant_id == team_id)).mappings()
            state[table.name] = sorted(repr(sorted(row.items())) for row in rows)
        state["tenant"] = [repr(db.session.execute(select(Tenant.__table__).where(Tenant.id == team_id)).one())]
        people = select(User.__table__).join(Membership, Membership.user_id == User.id).where(
            Membership.tenant_id == team_id
        )
        state["user_account"] = sorted(repr(row) for row in db.session.execute(people))
    db.session.rollback()
    return state


def add_noise(world: World) -> list[tuple[Table, uuid.UUID]]:
    """More of everything in team A (and open incidents, failing channels): what charlie sees must not move."""
    team, now = world.team_a, utcnow()
    added: list[tuple[Table, uuid.UUID]] = []
    with system_scope():
        for n in range(30):
            endpoint = Endpoint(id=uuid.uuid4(), tenant_id=team, name=mark("endpoint", f"-noise-{n}"),
                                url=f"https://noise-{n}.example/", status=("up", "down", "pending")[n % 3],
                                paused=n % 7 == 0, created_at=now - timedelta(minutes=n))
            db.session.add(endpoint)
            db.session.flush()
            added.append((Endpoint.__table__, endpoint.id))
            if n % 3 == 1:
                incident = Incident(id=uuid.uuid4(), tenant_id=team, endpoint_id=endpoint.id, started_at=now,
                                    first_error=mark("incident", "-noise"))
                db.session.add(incident)
                added.append((Incident.__table__, incident.id))
        channel = NotificationChannel(id=uuid.uuid4(), tenant_id=team, name=mark("notification_channel", "-noise"),
                                      kind="email", email_recipients=[], failing=True)
        db.session.add(channel)
        added.append((NotificationChannel.__table__, channel.id))
        for n in range(60):
            event = AuditEvent(tenant_id=team, action="noise", target=mark("audit_event", f"-noise-{n}"))
            db.session.add(event)
        db.session.commit()
    db.session.expunge_all()
    return added


def remove_noise(world: World, added: list[tuple[Table, uuid.UUID]]) -> None:
    with system_scope():
        for table, row_id in reversed(added):
            db.session.execute(table.delete().where(table.c.id == row_id))
        db.session.execute(AuditEvent.__table__.delete().where(AuditEvent.action == "noise"))
        db.session.commit()
