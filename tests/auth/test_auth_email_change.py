"""Changing the account's email address: confirmed from the new address first."""

from __future__ import annotations

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import User
from tests.auth.conftest import link_in, mail_to, post_form
from tests.auth.test_auth_login import actions
from tests.conftest import PASSWORD, login


def ask(client, email, password=PASSWORD):
    return post_form(client, "/account/email", {"email": email, "password_check": password}, page="/account")


def email_of(actor) -> str:
    db.session.expire_all()
    return db.session.execute(select(User.email).where(User.id == actor.user_id)).scalar_one()


def test_the_address_changes_when_the_new_one_confirms(client, alice, outbox):
    login(client, alice)
    assert ask(client, "alice@new.example").status_code == 303
    assert email_of(alice) == "alice@example.com"  # nothing changes yet
    path = link_in(mail_to(outbox, "alice@new.example", "Confirm your new email"), "/account/email/confirm/")
    assert client.get(path).status_code == 303
    assert email_of(alice) == "alice@new.example"
    mail_to(outbox, "alice@example.com", "address was changed")
    assert client.get(path).status_code == 400  # used up
    assert "email.changed" in actions()


def test_it_needs_the_current_password(client, alice, outbox):
    login(client, alice)
    response = ask(client, "alice@new.example", "not my password at all")
    assert response.status_code == 422
    assert outbox == []


def test_a_taken_address_is_told_and_nothing_changes(client, alice, bob, outbox):
    login(client, alice)
    assert ask(client, bob.email).status_code == 303
    mail_to(outbox, bob.email, "already have")
    assert email_of(alice) == "alice@example.com"
