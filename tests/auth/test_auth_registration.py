"""Sign-up, email verification and the already-registered mail."""

from __future__ import annotations

import re

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, Membership, Role, Tenant, User
from monitorapp.tenancy import system_scope
from tests.auth.conftest import NEW_PASSWORD, link_in, mail_to, post_form
from tests.conftest import login


def register(client, email="dora@example.com", password=NEW_PASSWORD, team_name="Dora's team"):
    return post_form(client, "/register", {"email": email, "password": password, "team_name": team_name})


def test_it_creates_a_team_and_its_unverified_owner(client, ctx, outbox):
    response = register(client)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/register/check-email")
    with system_scope():
        user = db.session.execute(select(User).where(User.email == "dora@example.com")).scalar_one()
        membership = db.session.execute(select(Membership).where(Membership.user_id == user.id)).scalar_one()
        team = db.session.get(Tenant, membership.tenant_id)
        events = db.session.execute(select(AuditEvent.action).where(AuditEvent.tenant_id == team.id)).scalars()
        assert "user.registered" in list(events)
    assert team.name == "Dora's team"
    assert membership.role == Role.OWNER.value
    assert not user.is_verified
    assert user.password_hash.startswith("scrypt:")
    mail_to(outbox, "dora@example.com", "Verify")


def test_it_stores_the_address_lowercased(client, ctx):
    register(client, email="  Dora@Example.COM ")
    assert db.session.execute(select(User.email)).scalar_one() == "dora@example.com"


def test_it_refuses_a_short_password(client, ctx):
    response = register(client, password="short1234")
    assert response.status_code == 422
    assert "at least 10 characters" in response.get_data(as_text=True)
    assert db.session.execute(select(User)).first() is None


def test_it_refuses_a_common_password(client, ctx):
    response = register(client, password="1234567890")
    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)


def test_it_refuses_the_email_as_password(client, ctx):
    response = register(client, email="dora.longname@example.com", password="dora.longname@example.com")
    assert response.status_code == 422
    assert "must not be your email" in response.get_data(as_text=True)


def test_it_refuses_a_password_longer_than_128(client, ctx):
    assert register(client, password="x" * 129 + "y").status_code == 422
    assert register(client, password="unusual " * 16).status_code == 303  # exactly 128 is fine


def test_it_answers_an_existing_address_the_same_way_and_mails_it(client, alice, outbox):
    new = register(client, email="dora@example.com")
    existing = register(client, email="alice@example.com", team_name="Another")
    assert existing.status_code == new.status_code == 303
    assert existing.headers["Location"] == new.headers["Location"]
    message = mail_to(outbox, "alice@example.com", "already have")
    assert "/password/forgot" in message.get_content()
    assert db.session.execute(select(Tenant).where(Tenant.name == "Another")).first() is None


def test_the_verification_link_verifies_once(client, ctx, outbox):
    register(client)
    path = link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/")
    response = client.get(path)
    assert response.status_code == 303
    user = db.session.execute(select(User)).scalar_one()
    db.session.refresh(user)
    assert user.is_verified
    with system_scope():
        actions = db.session.execute(select(AuditEvent.action)).scalars().all()
    assert actions.count("user.verified") == 1
    client.get(path)  # opening it again changes nothing and records nothing
    with system_scope():
        assert db.session.execute(select(AuditEvent.action)).scalars().all().count("user.verified") == 1


def test_it_refuses_a_tampered_or_expired_verification_link(client, ctx, outbox, app, monkeypatch):
    register(client)
    path = link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/")
    assert client.get(path[:-3] + "abc").status_code == 400
    from datetime import timedelta

    import monitorapp.auth.links as links

    monkeypatch.setattr(links, "VERIFY_MAX_AGE", timedelta(seconds=-1))
    assert client.get(path).status_code == 400
    assert not db.session.execute(select(User)).scalar_one().is_verified


def test_an_unverified_user_sees_the_banner_and_can_resend(client, ctx, outbox):
    register(client)
    post_form(client, "/login", {"email": "dora@example.com", "password": NEW_PASSWORD}, page="/login")
    page = client.get("/account").get_data(as_text=True)
    assert 'id="verify-banner"' in page
    outbox.clear()
    response = post_form(client, "/verify/resend", {"next": "/account"}, page="/account")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    path = link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/")
    client.get(path)
    assert 'id="verify-banner"' not in client.get("/account").get_data(as_text=True)


def test_a_verified_user_sees_no_banner(client, alice):
    login(client, alice)
    assert "verify-banner" not in client.get("/account").get_data(as_text=True)


def test_the_register_page_has_the_form(client, ctx):
    page = client.get("/register").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/register"', page)
