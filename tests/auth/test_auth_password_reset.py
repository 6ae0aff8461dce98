"""Password reset by email: an expiring, single-use link that ends every session."""

from __future__ import annotations

import re
from datetime import timedelta

import monitorapp.auth.links as links
from tests.auth.conftest import NEW_PASSWORD, link_in, mail_to, post_form
from tests.auth.test_auth_login import actions, log_in
from tests.conftest import PASSWORD


def ask_for_reset(client, email):
    return post_form(client, "/password/forgot", {"email": email})


def test_it_mails_a_link_that_sets_a_new_password(client, app, alice, outbox):
    laptop = app.test_client()
    log_in(laptop, alice.email)
    response = ask_for_reset(client, alice.email)
    assert response.status_code == 200
    path = link_in(mail_to(outbox, alice.email, "Reset"), "/password/reset/")
    assert client.get(path).status_code == 200
    response = post_form(client, path, {"password": NEW_PASSWORD})
    assert response.status_code == 303
    assert client.get("/account").status_code == 200  # signed in by the reset
    assert laptop.get("/account").status_code == 302  # every other session ended
    assert log_in(app.test_client(), alice.email, NEW_PASSWORD).status_code == 303
    assert log_in(app.test_client(), alice.email, PASSWORD).status_code == 422
    assert "password.reset" in actions()


def test_the_reset_link_works_once(client, alice, outbox):
    ask_for_reset(client, alice.email)
    path = link_in(mail_to(outbox, alice.email, "Reset"), "/password/reset/")
    post_form(client, path, {"password": NEW_PASSWORD})
    assert client.get(path).status_code == 400
    assert "no longer works" in client.get(path).get_data(as_text=True)


def test_the_reset_link_expires(client, alice, outbox, monkeypatch):
    ask_for_reset(client, alice.email)
    path = link_in(mail_to(outbox, alice.email, "Reset"), "/password/reset/")
    monkeypatch.setattr(links, "RESET_MAX_AGE", timedelta(seconds=-1))
    assert client.get(path).status_code == 400


def test_it_answers_an_unknown_address_the_same_way_and_sends_nothing(client, alice, outbox):
    known = ask_for_reset(client, alice.email)
    unknown = ask_for_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert [m["To"] for m in outbox] == [alice.email]


def test_the_new_password_follows_the_rules(client, alice, outbox):
    ask_for_reset(client, alice.email)
    path = link_in(mail_to(outbox, alice.email, "Reset"), "/password/reset/")
    response = post_form(client, path, {"password": "password123"})
    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)


def test_links_point_at_base_url_not_the_host_header(client, alice, outbox):
    evil = {"Host": "evil.example"}
    page = client.get("/password/forgot", headers=evil).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/password/forgot", data={"email": alice.email, "csrf_token": token}, headers=evil)
    assert response.status_code == 200
    body = mail_to(outbox, alice.email, "Reset").get_content()
    assert "evil.example" not in body
    assert "http://127.0.0.1:5000/password/reset/" in body
