"""Rate limits on sign-in, sign-up, reset, verification resend and invitations."""

from __future__ import annotations

import time

import pytest

from tests.auth.conftest import RequestIsolatedClient, post_form
from tests.conftest import PASSWORD, login, make_token

WRONG = "wrong password here"  # noqa: S105


@pytest.fixture
def limited(make_app, app):
    """`limited(RATELIMIT_LOGIN_ACCOUNT="2 per minute")` → an app with limits on (and tight)."""

    def build(**limits):
        limited_app = make_app(RATELIMIT_ENABLED=True, **limits)
        limited_app.test_client_class = RequestIsolatedClient
        return limited_app

    return build


def from_ip(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def attempt(client, email, password=WRONG):
    return post_form(client, "/login", {"email": email, "password": password}, page="/login")


def test_failed_logins_for_one_account_trip_from_any_address(limited, alice):
    app = limited(RATELIMIT_LOGIN_ACCOUNT="2 per minute")
    assert attempt(from_ip(app, "10.0.0.1"), alice.email).status_code == 422
    assert attempt(from_ip(app, "10.0.0.2"), alice.email).status_code == 422
    response = attempt(from_ip(app, "10.0.0.3"), alice.email, PASSWORD)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many requests" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    # Another account from the same addresses is unaffected.
    assert attempt(from_ip(app, "10.0.0.3"), "someone@example.com").status_code == 422


def test_successful_logins_do_not_use_up_the_account_limit(limited, alice):
    app = limited(RATELIMIT_LOGIN_ACCOUNT="2 per minute")
    for _ in range(4):
        client = app.test_client()
        assert attempt(client, alice.email, PASSWORD).status_code == 303


def test_logins_from_one_address_trip_across_accounts(limited, alice):
    app = limited(RATELIMIT_LOGIN_IP="3 per minute")
    client = from_ip(app, "10.0.0.9")
    for number in range(3):
        assert attempt(client, f"person{number}@example.com").status_code == 422
    assert attempt(client, alice.email, PASSWORD).status_code == 429
    assert attempt(from_ip(app, "10.0.0.10"), alice.email, PASSWORD).status_code == 303


def test_the_limit_resets_after_its_window(limited, alice):
    app = limited(RATELIMIT_LOGIN_ACCOUNT="1 per 2 seconds")
    client = app.test_client()
    attempt(client, alice.email)
    blocked = attempt(client, alice.email, PASSWORD)
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 2
    # Retry-After is rounded down to whole seconds: poll for the window's end, bounded.
    give_up = time.monotonic() + int(blocked.headers["Retry-After"]) + 3
    time.sleep(int(blocked.headers["Retry-After"]))
    while (status := attempt(client, alice.email, PASSWORD).status_code) == 429 and time.monotonic() < give_up:
        time.sleep(0.25)
    assert status == 303


def test_registration_is_limited_per_address(limited, ctx):
    app = limited(RATELIMIT_REGISTER="2 per minute")
    client = app.test_client()
    for number in range(2):
        data = {"email": f"new{number}@example.com", "password": "a fine long passphrase", "team_name": "T"}
        assert post_form(client, "/register", data).status_code == 303
    data = {"email": "new9@example.com", "password": "a fine long passphrase", "team_name": "T"}
    assert post_form(client, "/register", data).status_code == 429


def test_password_reset_is_limited(limited, alice, outbox):
    app = limited(RATELIMIT_PASSWORD_RESET="2 per minute")
    client = app.test_client()
    for _ in range(2):
        assert post_form(client, "/password/forgot", {"email": alice.email}).status_code == 200
    assert post_form(client, "/password/forgot", {"email": alice.email}).status_code == 429
    assert len(outbox) == 2


def test_verification_resend_is_limited(limited, alice, outbox):
    app = limited(RATELIMIT_VERIFY_RESEND="1 per minute")
    client = app.test_client()
    login(client, alice)
    assert post_form(client, "/verify/resend", {}, page="/account").status_code == 303
    assert post_form(client, "/verify/resend", {}, page="/account").status_code == 429


def test_invitations_are_limited_per_owner(limited, alice, outbox):
    app = limited(RATELIMIT_INVITE="2 per minute")
    client = app.test_client()
    login(client, alice)
    for number in range(2):
        data = {"email": f"guest{number}@example.com", "role": "member"}
        assert post_form(client, "/team/invitations", data, page="/team").status_code == 303
    data = {"email": "guest9@example.com", "role": "member"}
    assert post_form(client, "/team/invitations", data, page="/team").status_code == 429
    assert len(outbox) == 2


def test_limits_are_off_when_ratelimit_enabled_is_false(make_app, app, alice):
    relaxed = make_app(RATELIMIT_ENABLED=False, RATELIMIT_LOGIN_ACCOUNT="1 per minute")
    relaxed.test_client_class = RequestIsolatedClient
    for _ in range(3):
        assert attempt(relaxed.test_client(), alice.email).status_code == 422


def test_the_api_answers_429_in_json_with_retry_after(limited, alice):
    app = limited(API_RATE_LIMIT="1 per minute")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {make_token(alice)}"}
    assert client.get("/api/endpoints/", headers=headers).status_code == 200
    response = client.get("/api/endpoints/", headers=headers)
    assert response.status_code == 429
    assert response.is_json and response.get_json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
