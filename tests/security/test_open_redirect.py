"""Open redirects: no `next` (or other redirect target) ever sends the browser out of the app.

Every place that takes a redirect target from the request is driven with a
corpus of classic escapes, and every answer's `Location` (or `HX-Redirect`)
must name a page of this app: a relative path with exactly one leading "/",
or an absolute URL on the app's own host. A browser is more forgiving than
a URL parser — it drops tabs and newlines, trims control characters and
reads "\\" as "/" — so each target is also resolved the way a browser would
and must still land on the app's host.

Each place is also given a good target and must follow it, so a place that
simply ignored `next` (and so could not fail) would be noticed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from monitorapp.extensions import db
from monitorapp.models import Endpoint, Incident, utcnow
from monitorapp.tenancy import tenant_scope
from tests.conftest import csrf_token, login
from tests.figures import record

APP_HOST = "localhost"

PAYLOADS = [
    # Scheme-relative and its many spellings.
    "//evil.example",
    "//evil.example/dashboard",
    "///evil.example",
    "////evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "//\\evil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "//%65vil.example",
    "//evil.example%2F%2E%2E",
    "//localhost@evil.example",
    "/.//evil.example",
    "/..//evil.example",
    "/%2e%2e//evil.example",
    # Absolute URLs, with and without slashes, user information and case games.
    "https://evil.example",
    "http://evil.example/",
    "HTTPS://EVIL.EXAMPLE/",
    "http:evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https:/\\evil.example",
    "https:\\\\evil.example",
    "http://localhost@evil.example/",
    "https://user:password@evil.example/",
    "http://localhost:80@evil.example/",
    "https://evil.example\\@localhost/",
    "http://localhost.evil.example/",
    "ftp://evil.example/",
    # Script and data URLs.
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "java\tscript:alert(1)",
    "javascript://%0aalert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    # Whitespace and control characters a browser drops or trims.
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    "\n//evil.example",
    " //evil.example",
    "\x00//evil.example",
    "/\x00/evil.example",
    "\x0c//evil.example",
    "/\\\t\\evil.example",
    "/\r\nSet-Cookie: injected=1",
    "/%0d%0aSet-Cookie:%20injected=1",
    # Look-alike slashes (full-width, division slash, full-width reverse solidus).
    "\uff0f\uff0fevil.example",
    "/\uff0fevil.example",
    "\uff3c\uff3cevil.example",
    "/\u2215evil.example",
    "\u3000//evil.example",
]
GOOD_TARGET = "/incidents?state=open"


def browser_destination(location: str, base: str = f"http://{APP_HOST}/somewhere") -> tuple[str, str]:
    """(scheme, host) a browser would go to for `location`, as the WHATWG URL rules read it."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("".join(chr(code) for code in range(0x21)))
    scheme = urlsplit(cleaned).scheme.lower()
    if scheme in ("", "http", "https"):
        cleaned = cleaned.replace("\\", "/")  # special schemes read a backslash as a slash
    resolved = urlsplit(urljoin(base, cleaned))
    return resolved.scheme.lower(), (resolved.hostname or "")


def assert_inside_the_app(location: str, payload: str) -> None:
    __tracebackhide__ = True
    assert location, f"no redirect target for {payload!r}"
    parts = urlsplit(location)
    if parts.scheme or parts.netloc:
        assert parts.scheme in ("http", "https") and parts.hostname == APP_HOST, (payload, location)
    else:
        assert location.startswith("/") and not location.startswith(("//", "/\\")), (payload, location)
    assert not re.search(r"[\x00-\x20\x7f\\]", location), (payload, location)
    assert browser_destination(location) in (("http", APP_HOST), ("https", APP_HOST)), (payload, location)


def refused_at_the_door(response, payload: str) -> bool:
    """A payload holding a NUL is refused before any view with a 400 (errors.py): no redirect at all."""
    __tracebackhide__ = True
    if "\x00" not in payload:
        return False
    assert response.status_code == 400, (payload, response.status_code)
    assert "Location" not in response.headers and "HX-Redirect" not in response.headers, payload
    return True


def redirect_target(response) -> str:
    assert response.status_code in (200, 301, 302, 303, 307, 308), response.status_code
    return response.headers.get("HX-Redirect") or response.headers.get("Location", "")


@pytest.fixture
def app(make_app, redis_url):
    from tests.conftest import fresh

    # Dozens of sign-ins and resends in a row: the rate limits have their own tests.
    yield from fresh(make_app(RATELIMIT_ENABLED=False), redis_url)


@pytest.fixture
def quick_alice(alice):
    """alice with a cheap password hash: dozens of sign-ins here test `next`, not scrypt."""
    from werkzeug.security import generate_password_hash

    from monitorapp.models import User
    from monitorapp.tenancy import system_scope

    with system_scope():
        db.session.get(User, alice.user_id).password_hash = generate_password_hash(alice.password, "pbkdf2:sha256:1000")
        db.session.commit()
    return alice


@pytest.fixture
def signed_in(client, alice):
    login(client, alice)
    return client


@pytest.fixture
def incident_id(ctx, alice):
    with tenant_scope(alice.team_id):
        endpoint = Endpoint(name="shop", url="https://93.184.216.34/health", created_by_id=alice.user_id)
        db.session.add(endpoint)
        db.session.flush()
        incident = Incident(endpoint_id=endpoint.id, started_at=utcnow() - timedelta(minutes=5), first_error="boom")
        db.session.add(incident)
        db.session.commit()
        return incident.id


def test_the_checker_itself_tells_escapes_from_paths():
    for escape in ("//evil.example", "/\\evil.example", "/\t/evil.example", "https://evil.example/", "javascript:x"):
        with pytest.raises(AssertionError):
            assert_inside_the_app(escape, escape)
    for inside in ("/", "/dashboard?page=2", "/%2F%2Fevil.example", "http://localhost/incidents"):
        assert_inside_the_app(inside, inside)
    assert len(PAYLOADS) >= 20
    record("open-redirect payloads", len(PAYLOADS))


def test_sign_in_follows_a_path_inside_the_app_and_nothing_else(app, quick_alice):
    alice = quick_alice
    checked = 0
    for payload in [*PAYLOADS, GOOD_TARGET]:
        client = app.test_client()  # signed out again for each try, in an app context of its own
        with app.app_context():
            csrf = csrf_token(client, "/login")
            response = client.post(
                "/login",
                query_string={"next": payload},
                data={"csrf_token": csrf, "email": alice.email, "password": alice.password},
            )
        if refused_at_the_door(response, payload):
            checked += 1
            continue
        assert response.status_code == 303, (payload, response.status_code)
        location = redirect_target(response)
        assert_inside_the_app(location, payload)
        if payload == GOOD_TARGET:
            assert location == GOOD_TARGET
        checked += 1
    assert checked == len(PAYLOADS) + 1


def test_the_sign_in_page_of_a_signed_in_person_follows_only_paths_inside_the_app(signed_in):
    for payload in [*PAYLOADS, GOOD_TARGET]:
        response = signed_in.get("/login", query_string={"next": payload})
        if refused_at_the_door(response, payload):
            continue
        assert response.status_code == 302, (payload, response.status_code)
        location = redirect_target(response)
        assert_inside_the_app(location, payload)
    assert location == GOOD_TARGET


def test_the_sign_in_form_never_carries_an_escape_into_its_action(client):
    for payload in PAYLOADS:
        response = client.get("/login", query_string={"next": payload})
        if refused_at_the_door(response, payload):
            continue
        page = response.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]+)" id="login-form"', page).group(1)
        values = parse_qs(urlsplit(action.replace("&amp;", "&")).query).get("next", [])
        for value in values:
            assert_inside_the_app(value, payload)


def test_a_failed_sign_in_keeps_only_a_safe_next(client, alice):
    csrf = csrf_token(client, "/login")
    for payload in PAYLOADS:
        response = client.post(
            "/login",
            query_string={"next": payload},
            data={"csrf_token": csrf, "email": alice.email, "password": ""},  # refused before any hashing
        )
        if refused_at_the_door(response, payload):
            continue
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]+)" id="login-form"', page).group(1)
        for value in parse_qs(urlsplit(action.replace("&amp;", "&")).query).get("next", []):
            assert_inside_the_app(value, payload)


@pytest.mark.parametrize(
    "path_and_form",
    [
        pytest.param(("/verify/resend", {}), id="resend-verification"),
        pytest.param(("/teams/switch", {"team_id": None}), id="switch-team"),
        pytest.param(("/incidents/{incident}/acknowledge", {}), id="acknowledge-incident"),
    ],
)
def test_forms_with_a_next_field_only_go_back_inside_the_app(signed_in, alice, incident_id, path_and_form):
    path, form = path_and_form
    path = path.format(incident=incident_id)
    form = {key: (str(alice.team_id) if key == "team_id" else value) for key, value in form.items()}
    csrf = csrf_token(signed_in, "/account")
    for payload in [*PAYLOADS, GOOD_TARGET]:
        response = signed_in.post(path, data={"csrf_token": csrf, "next": payload, **form})
        if refused_at_the_door(response, payload):
            continue
        assert response.status_code == 303, (payload, response.status_code)
        location = redirect_target(response)
        assert_inside_the_app(location, payload)
    assert location == GOOD_TARGET


def test_acknowledge_reads_next_from_the_query_string_too(signed_in, incident_id):
    csrf = csrf_token(signed_in, "/account")
    for payload in [*PAYLOADS, GOOD_TARGET]:
        response = signed_in.post(
            f"/incidents/{incident_id}/acknowledge", query_string={"next": payload}, data={"csrf_token": csrf}
        )
        if refused_at_the_door(response, payload):
            continue
        assert response.status_code == 303, (payload, response.status_code)
        assert_inside_the_app(redirect_target(response), payload)
    assert redirect_target(response) == GOOD_TARGET


def test_an_expired_session_sends_to_sign_in_with_a_next_inside_the_app(client, alice):
    """The sign-in link built for an expired session carries the page the person was on — if it is inside."""
    # A header cannot carry a newline; every other payload can arrive as the current page.
    payloads = [payload for payload in PAYLOADS if not re.search(r"[\r\n]", payload)]
    pages = [f"http://{APP_HOST}" + payload for payload in payloads if payload.startswith("/")]
    pages += [payload for payload in payloads if not payload.startswith("/")]
    pages.append(f"http://{APP_HOST}/dashboard?page=2")
    for current in pages:
        response = client.get("/dashboard", headers={"HX-Request": "true", "HX-Current-URL": current})
        assert response.status_code == 200, current
        location = response.headers["HX-Redirect"]
        assert_inside_the_app(location, current)
        assert urlsplit(location).path == "/login"
        for value in parse_qs(urlsplit(location).query).get("next", []):
            assert_inside_the_app(value, current)
    assert parse_qs(urlsplit(location).query)["next"] == ["/dashboard?page=2"]


def test_a_plain_request_for_a_protected_page_sends_to_sign_in_with_its_own_path(client):
    for query in ("next=//evil.example", "x=/\\evil.example", "q=https://evil.example/"):
        response = client.get("/dashboard?" + query)
        assert response.status_code == 302
        location = response.headers["Location"]
        assert_inside_the_app(location, query)
        (value,) = parse_qs(urlsplit(location).query)["next"]
        assert_inside_the_app(value, query)
    assert value == "/dashboard?q=https://evil.example/"  # a page of the app, whatever its query says
