"""Security headers, cookie flags and CSRF on the accounts pages."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from tests.auth.conftest import RequestIsolatedClient
from tests.conftest import PASSWORD, csrf_token, login, make_token


@pytest.mark.parametrize("path", ["/login", "/register", "/password/forgot", "/static/css/app.css"])
def test_every_response_carries_the_security_headers(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts_styles_or_handlers(client, alice):
    login(client, alice)
    for path in ("/login", "/register", "/account", "/team", "/team/audit", "/teams/new"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>" not in page and "<style" not in page, path
        assert " style=" not in page and " onclick=" not in page and "hx-on" not in page, path


def test_a_session_post_without_the_csrf_token_is_refused(client, alice):
    login(client, alice)
    response = client.post("/account/tokens", data={"name": "x", "scope": "read"})
    assert response.status_code == 400
    assert client.post("/team/rename", data={"name": "Hijacked"}).status_code == 400
    assert client.post("/account/sign-out-everywhere").status_code == 400


def test_htmx_posts_may_send_the_token_in_a_header(client, alice):
    login(client, alice)
    token = csrf_token(client, "/team")
    response = client.post("/team/rename", data={"name": "Renamed"}, headers={"X-CSRFToken": token})
    assert response.status_code == 303


def test_the_login_form_needs_the_csrf_token(client, alice):
    client.get("/login")
    response = client.post("/login", data={"email": alice.email, "password": PASSWORD})
    assert response.status_code == 400


def test_bearer_api_calls_need_no_csrf_token_but_cookie_calls_do(client, alice):
    secret = make_token(alice)
    # An incomplete body: past the CSRF check, the API answers with field errors.
    with_bearer = client.post("/api/endpoints/", json={"name": ""}, headers={"Authorization": f"Bearer {secret}"})
    assert "errors" in with_bearer.get_json()
    login(client, alice)
    with_cookie = client.post("/api/endpoints/", json={"name": ""})
    assert with_cookie.status_code == 400
    assert "errors" not in with_cookie.get_json()  # refused before the view: no CSRF token


@pytest.fixture
def production(make_app, app):
    prod = make_app(
        MODE="production",
        SKIP_DEPLOY_CHECK=True,
        BASE_URL="https://monitor.example",
        SESSION_COOKIE_SECURE=True,
        REMEMBER_COOKIE_SECURE=True,
        SESSION_COOKIE_NAME="__Host-session",
        REMEMBER_COOKIE_NAME="__Host-remember_token",
        HSTS_SECONDS=31536000,
        MAIL_BACKEND="console",
    )
    prod.test_client_class = RequestIsolatedClient
    return prod


def test_production_cookies_are_host_prefixed_secure_httponly_and_lax(production, alice):
    client = production.test_client()
    page = client.get("/login", base_url="https://monitor.example").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login",
        data={"email": alice.email, "password": PASSWORD, "remember": "y", "csrf_token": token},
        base_url="https://monitor.example",
        headers={"Referer": "https://monitor.example/login"},
    )
    assert response.status_code == 303
    cookies = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        cookies.load(header)
    for name in ("__Host-session", "__Host-remember_token"):
        cookie = cookies[name]
        assert cookie["secure"] and cookie["httponly"], name
        assert cookie["samesite"] == "Lax" and cookie["path"] == "/" and not cookie["domain"], name


def test_production_redirects_to_https_and_sends_hsts(production):
    client = production.test_client()
    plain = client.get("/login", base_url="http://monitor.example")
    assert plain.status_code == 308
    assert plain.headers["Location"].startswith("https://monitor.example/login")
    secure = client.get("/login", base_url="https://monitor.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
