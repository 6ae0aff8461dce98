"""Sign-in, sign-out, session rotation, `next`, and sessions ending."""

from __future__ import annotations

from http.cookies import SimpleCookie

from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.models import AuditEvent, User
from monitorapp.tenancy import system_scope
from tests.auth.conftest import NEW_PASSWORD, post_form
from tests.conftest import PASSWORD, csrf_token


def log_in(client, email, password=PASSWORD, remember=False, next_url=None):
    data = {"email": email, "password": password}
    if remember:
        data["remember"] = "y"
    path = "/login" + (f"?next={next_url}" if next_url else "")
    return post_form(client, path, data, page="/login")


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def actions() -> list[str]:
    with system_scope():
        return list(db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())


def test_it_logs_in_and_lands_on_the_dashboard(client, alice):
    response = log_in(client, alice.email)
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"
    assert client.get("/account").status_code == 200
    assert "login.succeeded" in actions()


def test_it_refuses_a_wrong_password_without_saying_whether_the_account_exists(client, alice):
    wrong = log_in(client, alice.email, "not the password at all")
    unknown = log_in(client, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 422
    message = "That email and password do not match an account."
    assert message in wrong.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)
    assert client.get("/account").status_code == 302
    assert actions() == ["login.failed"]  # the unknown address goes to the log only


def test_it_rotates_the_session_at_login(client, alice):
    before_token = csrf_token(client, "/login")
    before_cookie = session_cookie(client)
    log_in(client, alice.email)
    after_cookie = session_cookie(client)
    assert after_cookie != before_cookie
    # The pre-login session's CSRF token is dead: nothing planted before login survives it.
    response = client.post("/account/sign-out-everywhere", data={"csrf_token": before_token})
    assert response.status_code == 400


def test_it_follows_next_only_inside_the_app(client, alice, bob):
    assert log_in(client, alice.email, next_url="/account").headers["Location"] == "/account"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = log_in(client, bob.email, next_url=evil)
        assert response.headers["Location"] == "/dashboard", evil
        client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})


def test_logout_is_a_post_and_ends_the_session(client, alice):
    log_in(client, alice.email)
    assert client.get("/logout").status_code == 405
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 303
    assert client.get("/account").status_code == 302
    assert "logout" in actions()


def test_logout_also_ends_remember_me(client, alice):
    log_in(client, alice.email, remember=True)
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert client.get_cookie("remember_token") is None
    assert "remember_token=;" in " ".join(response.headers.getlist("Set-Cookie"))
    assert client.get("/account").status_code == 302


def test_logout_needs_the_csrf_token(client, alice):
    log_in(client, alice.email)
    assert client.post("/logout").status_code == 400
    assert client.get("/account").status_code == 200


def test_remember_me_keeps_the_user_signed_in_without_the_session(client, app, alice):
    log_in(client, alice.email, remember=True)
    remember = client.get_cookie("remember_token")
    assert remember is not None
    other = app.test_client()
    other.set_cookie("remember_token", remember.value)
    assert other.get("/account").status_code == 200


def test_a_password_change_ends_every_other_session_and_remember_cookie(client, app, alice, outbox):
    log_in(client, alice.email, remember=True)
    laptop = app.test_client()
    log_in(laptop, alice.email)
    phone = app.test_client()
    phone.set_cookie("remember_token", client.get_cookie("remember_token").value)
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").status_code == 200

    response = post_form(
        client, "/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD}, page="/account"
    )
    assert response.status_code == 303
    assert client.get("/account").status_code == 200  # this session lives on
    assert laptop.get("/account").status_code == 302
    fresh_phone = app.test_client()
    fresh_phone.set_cookie("remember_token", phone.get_cookie("remember_token").value)
    assert fresh_phone.get("/account").status_code == 302
    assert "password.changed" in actions()
    assert any(m["To"] == alice.email and "password was changed" in m["Subject"] for m in outbox)
    # The new password works, the old one does not.
    assert log_in(app.test_client(), alice.email, NEW_PASSWORD).status_code == 303
    assert log_in(app.test_client(), alice.email, PASSWORD).status_code == 422


def test_a_password_change_needs_the_current_password(client, alice):
    log_in(client, alice.email)
    response = post_form(
        client, "/account/password", {"current_password": "wrong one here", "password": NEW_PASSWORD}, page="/account"
    )
    assert response.status_code == 422
    assert "not your current password" in response.get_data(as_text=True)


def test_sign_out_everywhere_ends_other_sessions_but_not_this_one(client, app, alice):
    log_in(client, alice.email)
    laptop = app.test_client()
    log_in(laptop, alice.email, remember=True)
    remember = laptop.get_cookie("remember_token").value
    response = post_form(client, "/account/sign-out-everywhere", {}, page="/account")
    assert response.status_code == 303
    assert client.get("/account").status_code == 200
    assert laptop.get("/account").status_code == 302
    stranger = app.test_client()
    stranger.set_cookie("remember_token", remember)
    assert stranger.get("/account").status_code == 302
    assert "sessions.revoked" in actions()


def test_an_htmx_request_with_an_expired_session_gets_hx_redirect(client, alice):
    response = client.get("/account", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/team"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/login?next=/team"


def test_the_session_cookie_is_httponly_and_samesite_lax(client, alice):
    response = log_in(client, alice.email, remember=True)
    cookies = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        cookies.load(header)
    for name in ("session", "remember_token"):
        assert cookies[name]["httponly"], name
        assert cookies[name]["samesite"] == "Lax", name


def test_last_login_is_recorded(client, alice):
    log_in(client, alice.email)
    user = db.session.execute(select(User).where(User.email == alice.email)).scalar_one()
    db.session.refresh(user)
    assert user.last_login_at is not None
