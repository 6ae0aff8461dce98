"""Abuse of the account pages: brute force, account enumeration, one-time links, session fixation.

An attacker guesses passwords for one account from many addresses, or many
accounts from one address; asks whether an address has an account through
every form that takes one (by answer, by cookies, by timing); replays, ages,
tampers with and transplants the links the app mails; and plants a session
in a victim's browser before they sign in. Each must fail.

Elsewhere already, and not repeated here: a password change, a reset and
"sign out everywhere" end every other session and remember cookie
(tests/auth/test_auth_login.py, test_auth_password_reset.py); an invitation
cannot be accepted by another account, nor once withdrawn or past its date
(tests/auth/test_auth_teams.py).
"""

from __future__ import annotations

import math
import re
import socketserver
import statistics
import threading
import time
import uuid
from email import message_from_string, policy
from http.cookies import SimpleCookie

import pytest
from itsdangerous import URLSafeTimedSerializer
from rq import SimpleWorker
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

import monitorapp.auth.links as links
from monitorapp import mail
from monitorapp.extensions import db
from monitorapp.models import AuditEvent, User
from monitorapp.queues import NOTIFY_QUEUE, get_queue, get_redis
from monitorapp.tenancy import system_scope
from tests.auth.conftest import NEW_PASSWORD, RequestIsolatedClient, link_in, mail_to, post_form
from tests.auth.test_auth_mail import SMTPHandler
from tests.conftest import PASSWORD, csrf_token, make_team, make_token, make_user
from tests.figures import add, record

WRONG = "wrong password here"  # noqa: S105
GHOST = "ghost@example.com"


@pytest.fixture(autouse=True)
def _isolated_requests(app):
    app.test_client_class = RequestIsolatedClient


@pytest.fixture
def client(app, _isolated_requests):
    return app.test_client()


@pytest.fixture(autouse=True)
def outbox():
    mail.outbox.clear()
    yield mail.outbox
    mail.outbox.clear()


@pytest.fixture(autouse=True)
def _count_case():
    add("auth abuse cases")


@pytest.fixture
def limited(make_app, app):
    """`limited(RATELIMIT_LOGIN_IP="3 per minute")`: an app with limits on, tightened as asked.

    Flask-Limiter is one object bound to the newest app, so a test builds one app and uses only it.
    """

    def build(**settings):
        built = make_app(RATELIMIT_ENABLED=True, **settings)
        built.test_client_class = RequestIsolatedClient
        return built

    return build


@pytest.fixture
def unlimited(make_app, app):
    """An app with every limit off, for tests that send many requests."""
    built = make_app(RATELIMIT_ENABLED=False)
    built.test_client_class = RequestIsolatedClient
    return built


def from_ip(app, address: str):
    """A browser at `address` (the app reads the client address from REMOTE_ADDR)."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def attempt(browser, email: str, password: str = WRONG, remember: bool = False, page: str = "/login", **kwargs):
    data = {"email": email, "password": password} | ({"remember": "y"} if remember else {})
    return post_form(browser, "/login", data, page=page, **kwargs)


def retry_after(response) -> int:
    assert response.status_code == 429, response.status_code
    seconds = int(response.headers["Retry-After"])
    assert seconds > 0
    return seconds


def signed_in(browser) -> bool:
    return browser.get("/account").status_code == 200


def session_data(app, browser) -> dict:
    """What the browser's session cookie holds (Flask signs it; it is not encrypted)."""
    cookie = browser.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return dict(app.session_interface.get_signing_serializer(app).loads(cookie.value))


# -- brute force ---------------------------------------------------------------------


def test_one_account_guessed_from_many_addresses_is_locked_for_every_address(limited, alice, bob):
    app = limited(RATELIMIT_LOGIN_ACCOUNT="5 per minute", RATELIMIT_LOGIN_IP="100 per minute")
    # Five addresses, and every spelling of the address the login form accepts.
    spellings = [alice.email, "ALICE@example.com", "  alice@EXAMPLE.com ", "Alice@Example.Com", alice.email]
    for number, email in enumerate(spellings):
        assert attempt(from_ip(app, f"203.0.113.{number + 1}"), email).status_code == 422
    sixth = from_ip(app, "203.0.113.6")
    blocked = attempt(sixth, alice.email, PASSWORD)
    retry_after(blocked)
    assert "Location" not in blocked.headers and not signed_in(sixth)  # the right password does not help
    assert retry_after(attempt(from_ip(app, "203.0.113.1"), alice.email, PASSWORD))
    # The lock is on the account, not on the addresses: bob signs in from one of them.
    assert attempt(from_ip(app, "203.0.113.1"), bob.email, PASSWORD).status_code == 303


def test_an_unknown_address_locks_after_as_many_failures_as_a_real_one(limited, alice):
    app = limited(RATELIMIT_LOGIN_ACCOUNT="3 per minute", RATELIMIT_LOGIN_IP="100 per minute")

    def failures_until_locked(email: str) -> int:
        for number in range(10):
            if attempt(from_ip(app, f"198.18.{len(email)}.{number}"), email).status_code == 429:
                return number
        raise AssertionError(f"{email} never locked")

    # A lock that came sooner (or never) for unknown addresses would tell them apart.
    known, unknown = failures_until_locked(alice.email), failures_until_locked(GHOST)
    record("failed logins until locked, real/unknown address", f"{known} / {unknown}")
    assert known == unknown == 3


def test_many_accounts_guessed_from_one_address_trip_the_address_limit(limited, alice, bob, victor, charlie):
    app = limited(RATELIMIT_LOGIN_IP="12 per minute", RATELIMIT_LOGIN_ACCOUNT="100 per minute")
    attacker = from_ip(app, "198.51.100.23")
    targets = [alice.email, bob.email, victor.email, charlie.email] + [f"person{n}@example.com" for n in range(8)]
    for email in targets:
        assert attempt(attacker, email).status_code == 422
    for actor in (alice, charlie):
        retry_after(attempt(attacker, actor.email, actor.password))
    assert not signed_in(attacker)
    # Only that address is limited.
    assert attempt(from_ip(app, "198.51.100.24"), alice.email, PASSWORD).status_code == 303


def test_after_the_limit_even_the_right_password_waits_for_the_window(limited, alice):
    app = limited(RATELIMIT_LOGIN_IP="2 per 3 seconds", RATELIMIT_LOGIN_ACCOUNT="100 per minute")
    browser = from_ip(app, "198.51.100.30")
    started = time.monotonic()
    for _ in range(2):
        assert attempt(browser, alice.email).status_code == 422
    assert retry_after(attempt(browser, alice.email, PASSWORD)) <= 3
    assert attempt(browser, alice.email, PASSWORD).status_code == 429
    deadline = time.monotonic() + 30  # generous: the machine may be busy
    while (response := attempt(browser, alice.email, PASSWORD)).status_code == 429:
        assert time.monotonic() < deadline, "the limit never lifted"
        time.sleep(0.2)
    assert response.status_code == 303
    assert time.monotonic() - started >= 2.5  # not before the window had passed


def test_x_forwarded_for_is_ignored_when_no_proxy_is_configured(limited, alice):
    app = limited(RATELIMIT_LOGIN_IP="3 per minute", RATELIMIT_LOGIN_ACCOUNT="100 per minute")
    assert app.config["PROXY_FIX_HOPS"] == 0
    browser = from_ip(app, "198.51.100.40")
    for number in range(3):
        assert attempt(browser, f"p{number}@example.com", headers={"X-Forwarded-For": f"10.7.0.{number}"}).status_code == 422
    retry_after(attempt(browser, alice.email, PASSWORD, headers={"X-Forwarded-For": "10.7.0.99"}))


def test_behind_one_proxy_the_address_the_proxy_saw_is_limited(limited, alice):
    # Production trusts one proxy hop (PROXY_FIX_HOPS=1): the proxy appends the address it
    # saw to X-Forwarded-For, and anything the client wrote before it is ignored.
    app = limited(RATELIMIT_LOGIN_IP="3 per minute", RATELIMIT_LOGIN_ACCOUNT="100 per minute", PROXY_FIX_HOPS=1)
    proxy = from_ip(app, "10.0.0.2")  # every request arrives from the proxy

    def via_proxy(client_address: str, forged: str | None = None) -> dict:
        return {"X-Forwarded-For": f"{forged}, {client_address}" if forged else client_address}

    for number in range(3):
        headers = via_proxy("203.0.113.50", forged=f"192.0.2.{number}")
        assert attempt(proxy, f"p{number}@example.com", headers=headers).status_code == 422
    retry_after(attempt(proxy, alice.email, PASSWORD, headers=via_proxy("203.0.113.50", forged="192.0.2.77")))
    # Another person behind the same proxy has a budget of their own, and is audited by their address.
    assert attempt(app.test_client(), alice.email, PASSWORD, headers=via_proxy("203.0.113.51")).status_code == 303
    with app.app_context(), system_scope():
        ips = db.session.execute(select(AuditEvent.ip).where(AuditEvent.action == "login.succeeded")).scalars().all()
    assert ips == ["203.0.113.51"]


def test_guessed_api_tokens_share_one_budget_per_address(limited, alice):
    app = limited(API_RATE_LIMIT="5 per minute")
    paths = app.test_client().get("/api/openapi.json").get_json()["paths"]
    # The API signs nobody in: its only credential is a bearer token, so guessing tokens is its brute force.
    assert not [path for path in paths if re.search(r"login|password|session|token", path)]
    attacker = from_ip(app, "198.51.100.60")
    for number in range(5):
        guess = {"Authorization": f"Bearer mon_guess{number:04d}{'x' * 36}"}
        assert attacker.get("/api/endpoints/", headers=guess).status_code == 401
    refused = attacker.get("/api/endpoints/", headers={"Authorization": "Bearer mon_guess9999" + "x" * 36})
    retry_after(refused)
    assert refused.get_json()["error"] == "rate_limited"
    # A real token keeps a budget of its own, even from the same address.
    real = {"Authorization": f"Bearer {make_token(alice)}"}
    assert from_ip(app, "198.51.100.60").get("/api/endpoints/", headers=real).status_code == 200


def forgot(browser, email: str):
    return post_form(browser, "/password/forgot", {"email": email})


@pytest.mark.parametrize("email", ["alice@example.com", GHOST])
def test_reset_requests_for_one_address_are_limited_across_addresses(limited, alice, outbox, email):
    app = limited(RATELIMIT_PASSWORD_RESET="3 per minute")
    for number in range(3):
        assert forgot(from_ip(app, f"203.0.113.{number + 1}"), email).status_code == 200
    retry_after(forgot(from_ip(app, "203.0.113.9"), email))
    assert len(outbox) == (3 if email == alice.email else 0)  # nobody's inbox is flooded


def test_reset_requests_for_many_addresses_from_one_address_are_limited(limited, alice, bob, outbox):
    app = limited(RATELIMIT_PASSWORD_RESET="3 per minute")
    attacker = from_ip(app, "198.51.100.70")
    for email in (alice.email, GHOST, "other@example.com"):
        assert forgot(attacker, email).status_code == 200
    retry_after(forgot(attacker, bob.email))
    assert [message["To"] for message in outbox] == [alice.email]


def sign_up(browser, email: str, password: str = NEW_PASSWORD):
    return post_form(browser, "/register", {"email": email, "password": password, "team_name": "Team"})


@pytest.mark.parametrize("email", ["alice@example.com", "dora@example.com"])
def test_sign_ups_naming_one_address_are_limited_across_addresses(limited, alice, outbox, email):
    # Each sign-up with a taken address mails its owner; many addresses must not flood that inbox.
    app = limited(RATELIMIT_REGISTER="3 per minute")
    for number in range(3):
        assert sign_up(from_ip(app, f"203.0.113.{number + 1}"), email).status_code == 303
    retry_after(sign_up(from_ip(app, "203.0.113.9"), email))
    assert len([message for message in outbox if message["To"] == email]) == 3


def test_address_change_mails_are_limited_per_person(limited, alice, outbox):
    # Each request mails whatever address is typed in: without a limit, a relay for spam.
    app = limited(RATELIMIT_VERIFY_RESEND="2 per minute")
    browser = app.test_client()
    attempt(browser, alice.email, PASSWORD)
    for number in range(2):
        data = {"email": f"target{number}@example.net", "password_check": PASSWORD}
        assert post_form(browser, "/account/email", data, page="/account").status_code == 303
    data = {"email": "target9@example.net", "password_check": PASSWORD}
    retry_after(post_form(browser, "/account/email", data, page="/account"))
    assert len(outbox) == 2


@pytest.mark.parametrize("path", ["/account/password", "/account/email"])
def test_a_signed_in_session_cannot_guess_the_current_password(limited, alice, path):
    # Both forms check the current password: someone at a borrowed, signed-in laptop must not
    # be able to guess it there instead of at the login form.
    app = limited(RATELIMIT_LOGIN_ACCOUNT="3 per minute")
    browser = app.test_client()
    attempt(browser, alice.email, PASSWORD)
    fields = {"password": NEW_PASSWORD} if path.endswith("password") else {"email": "alice@new.example"}
    check = "current_password" if path.endswith("password") else "password_check"
    for _ in range(3):
        assert post_form(browser, path, {check: WRONG, **fields}, page="/account").status_code == 422
    retry_after(post_form(browser, path, {check: PASSWORD, **fields}, page="/account"))


# -- enumeration: the same answer whether or not the account exists -----------------------


def normalised(response, *emails: str) -> str:
    """The body with what legitimately differs (the CSRF token, the address typed) replaced."""
    body = response.get_data(as_text=True)
    body = re.sub(r'(name="csrf_token" value=")[^"]+', r"\1CSRF", body)
    body = re.sub(r'("X-CSRFToken": ")[^"]+', r"\1CSRF", body)
    for email in emails:
        body = body.replace(email, "EMAIL")
    return body


def cookie_shapes(response) -> dict:
    """Each cookie set, with its attributes but not its value."""
    shapes = {}
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            shapes[name] = {key: value for key, value in morsel.items() if key not in ("expires", "max-age")}
    return shapes


def header_shapes(response) -> dict:
    """The headers sent; for those that tick with the clock or follow the body's length, only that they were."""
    varying = {"date", "set-cookie", "content-length", "x-ratelimit-reset", "retry-after"}
    return {name.lower(): "SENT" if name.lower() in varying else value for name, value in response.headers.items()}


def assert_indistinguishable(known, unknown, *emails: str) -> None:
    assert known.status_code == unknown.status_code
    assert known.headers.get("Location") == unknown.headers.get("Location")
    assert header_shapes(known) == header_shapes(unknown)
    assert cookie_shapes(known) == cookie_shapes(unknown)
    assert normalised(known, *emails) == normalised(unknown, *emails)


def test_a_failed_login_reads_the_same_for_a_real_and_an_unknown_address(app, alice):
    known_browser, unknown_browser = from_ip(app, "192.0.2.1"), from_ip(app, "192.0.2.2")
    known = attempt(known_browser, alice.email)
    unknown = attempt(unknown_browser, GHOST)
    assert known.status_code == 422
    assert "do not match an account" in known.get_data(as_text=True)
    assert_indistinguishable(known, unknown, alice.email, GHOST)
    # Nothing left in the session for the next page either (a flash, say).
    assert_indistinguishable(known_browser.get("/login"), unknown_browser.get("/login"))


def test_a_reset_request_reads_the_same_for_a_real_and_an_unknown_address(app, alice, outbox):
    known_browser, unknown_browser = from_ip(app, "192.0.2.1"), from_ip(app, "192.0.2.2")
    known = forgot(known_browser, alice.email)
    unknown = forgot(unknown_browser, GHOST)
    assert known.status_code == 200
    assert "If EMAIL has an account" in normalised(known, alice.email)
    assert_indistinguishable(known, unknown, alice.email, GHOST)
    assert_indistinguishable(known_browser.get("/login"), unknown_browser.get("/login"))
    assert [message["To"] for message in outbox] == [alice.email]


def test_signing_up_with_a_taken_address_reads_like_a_new_sign_up(app, alice, outbox):
    new_browser, taken_browser = from_ip(app, "192.0.2.1"), from_ip(app, "192.0.2.2")
    new = sign_up(new_browser, "dora@example.com")
    taken = sign_up(taken_browser, alice.email)
    assert new.status_code == 303
    assert_indistinguishable(new, taken)
    new_page, taken_page = new_browser.get(new.headers["Location"]), taken_browser.get(taken.headers["Location"])
    assert_indistinguishable(new_page, taken_page)
    assert "already" not in taken_page.get_data(as_text=True).lower()
    # The owner of the taken address hears about it, by mail, instead of the visitor.
    assert "already have" in mail_to(outbox, alice.email)["Subject"]
    mail_to(outbox, "dora@example.com", "Verify")


def test_changing_to_a_taken_address_reads_like_changing_to_a_free_one(app, alice, bob, outbox):
    browser = app.test_client()
    attempt(browser, alice.email, PASSWORD)

    def change_to(email: str):
        response = post_form(browser, "/account/email", {"email": email, "password_check": PASSWORD}, page="/account")
        return response, browser.get(response.headers["Location"])

    free, free_page = change_to("free@example.net")
    taken, taken_page = change_to(bob.email)
    assert free.status_code == 303
    assert_indistinguishable(free, taken)
    assert "We sent a link to EMAIL" in normalised(free_page, "free@example.net")
    assert normalised(free_page, "free@example.net") == normalised(taken_page, bob.email)
    assert "already have" in mail_to(outbox, bob.email)["Subject"]


def test_resending_verification_takes_no_address_to_probe(app, alice, outbox):
    with app.app_context():
        make_user("dora@example.com", make_team("Dora's team"), verified=False)
    browser = app.test_client()
    assert attempt(browser, "dora@example.com", PASSWORD).status_code == 303
    response = post_form(browser, "/verify/resend", {"email": alice.email}, page="/account")
    assert response.status_code == 303
    assert [message["To"] for message in outbox] == ["dora@example.com"]  # only ever the signed-in person


# -- enumeration by timing ---------------------------------------------------------------

# The machine running the suite is shared and busy, so the two kinds of request
# alternate (both see the same load) and their medians are compared. One scrypt
# costs tens of milliseconds (more on a busy machine); a path that skipped it
# would differ by that much, far beyond the allowed gap.
TIMING_ROUNDS = 30


def timed(send, *args) -> float:
    started = time.perf_counter()
    send(*args)
    return (time.perf_counter() - started) * 1000


def scrypt_ms() -> float:
    """What one password check costs on this machine, now."""
    stored = generate_password_hash("a password to time", method="scrypt")
    return statistics.median(timed(check_password_hash, stored, "another password") for _ in range(3))


def _median_error(samples: list[float]) -> float:
    quartiles = statistics.quantiles(samples, n=4)
    sigma = (quartiles[2] - quartiles[0]) / 1.349
    return 1.2533 * sigma / math.sqrt(len(samples))


def compare_medians(name: str, send_a, send_b, floor_ms: float = 5.0, rounds: int = TIMING_ROUNDS) -> float:
    """Alternate the two requests `rounds` times each; assert their medians differ only by noise.

    Returns the gap allowed, for the caller to check it is smaller than what it must detect.
    """
    send_a(0), send_b(0)  # warm both paths (templates, connections)
    times = {send_a: [], send_b: []}
    for number in range(1, rounds + 1):
        for send in (send_a, send_b) if number % 2 else (send_b, send_a):
            times[send].append(timed(send, number))
    median_a, median_b = statistics.median(times[send_a]), statistics.median(times[send_b])
    record(f"{name} timing medians ms", f"{median_a:.1f} / {median_b:.1f}")
    # Noise, measured: the standard error of each median (from its interquartile range), so a
    # busy machine widens the allowance honestly; callers then check the allowance is still
    # smaller than the gap they must detect (one scrypt, one SMTP greeting).
    noise = math.hypot(*(_median_error(times[send]) for send in (send_a, send_b)))
    allowed = max(0.15 * max(median_a, median_b), floor_ms, 4 * noise)
    assert abs(median_a - median_b) < allowed, (name, median_a, median_b, allowed)
    return allowed


def poster(browser, path: str, data) -> callable:
    """POST the form at `path` with the browser's CSRF token, fetched once."""
    token = csrf_token(browser, path)

    def send(number: int):
        response = browser.post(path, data={"csrf_token": token, **data(number)})
        assert response.status_code < 429, response.status_code
        return response

    return send


@pytest.mark.slow
def test_a_failed_login_takes_as_long_for_an_unknown_address(unlimited, alice):
    known = poster(unlimited.test_client(), "/login", lambda n: {"email": alice.email, "password": WRONG})
    unknown = poster(unlimited.test_client(), "/login", lambda n: {"email": f"ghost{n}@example.com", "password": WRONG})
    allowed = compare_medians("login known/unknown", known, unknown)
    # The comparison can fail: a path that skipped the hash would be faster by more than allowed.
    assert allowed < scrypt_ms()


@pytest.mark.slow
@pytest.mark.postgres  # production's database: SQLite's commit alone is a tenth of a sign-up here
def test_signing_up_with_a_taken_address_takes_as_long_as_a_new_sign_up(unlimited, alice):
    # A new sign-up also writes its user, team and membership (a few milliseconds on PostgreSQL);
    # the taken address is hashed all the same, so the two differ by far less than one scrypt.
    def form(email):
        return lambda n: {"email": email(n), "password": NEW_PASSWORD, "team_name": "Team"}

    new = poster(unlimited.test_client(), "/register", form(lambda n: f"new{n}-{uuid.uuid4().hex[:6]}@example.com"))
    taken = poster(unlimited.test_client(), "/register", form(lambda n: alice.email))
    assert compare_medians("sign-up new/taken", new, taken) < scrypt_ms()


SMTP_GREETING_SECONDS = 0.1


class SlowSMTPHandler(SMTPHandler):
    """A mail server across the internet, not on this machine: the greeting takes a while."""

    def handle(self) -> None:
        time.sleep(SMTP_GREETING_SECONDS)
        super().handle()


@pytest.fixture
def mail_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SlowSMTPHandler)
    server.messages, server.envelope = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_app(make_app, app, mail_server):
    """Limits off, mail through a real (slow) SMTP server, as in production."""
    built = make_app(
        RATELIMIT_ENABLED=False,
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=mail_server.server_address[1],
        MAIL_USE_TLS=False,
    )
    built.test_client_class = RequestIsolatedClient
    return built


def test_a_worker_sends_the_reset_mail_after_the_answer(smtp_app, mail_server, alice):
    browser = smtp_app.test_client()
    assert forgot(browser, alice.email).status_code == 200
    assert forgot(browser, GHOST).status_code == 200
    assert mail_server.messages == []  # no SMTP during the request
    with smtp_app.app_context():
        queue = get_queue(NOTIFY_QUEUE)
        assert queue.count == 2  # one job per request, whether or not there is a mail to send
        SimpleWorker([queue], connection=get_redis()).work(burst=True, logging_level="WARNING")
    (raw,) = mail_server.messages
    message = message_from_string(raw, policy=policy.default)
    assert message["To"] == alice.email
    path = re.search(r"https?://[^/\s]+(/password/reset/\S+)", message.get_content()).group(1)
    assert opens(browser, path) == 200


@pytest.mark.slow
def test_a_reset_request_takes_as_long_for_an_unknown_address(smtp_app, alice):
    # Over SMTP, as in production (the console backend of development logs every mail it "sends").
    known = poster(smtp_app.test_client(), "/password/forgot", lambda n: {"email": alice.email})
    unknown = poster(smtp_app.test_client(), "/password/forgot", lambda n: {"email": f"ghost{n}@example.com"})
    # Cheap requests, so more of them: their medians settle within a few milliseconds.
    allowed = compare_medians("reset request known/unknown over SMTP", known, unknown, floor_ms=10.0, rounds=100)
    assert allowed < SMTP_GREETING_SECONDS * 1000  # one SMTP conversation during the answer would show
    with smtp_app.app_context():
        get_queue(NOTIFY_QUEUE).empty()

# -- one-time links: single use, expiry, tampering, transplanting ------------------------


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


def aged(app, purpose: str, token: str, seconds: int) -> str:
    """`token` signed again as if `seconds` ago, with the app's own signer (no clock is faked)."""
    with app.test_request_context():
        serializer = links._serializer(purpose)
        payload = serializer.loads(token)
        signer = serializer.make_signer(serializer.salt)
        signer.get_timestamp = lambda: int(time.time()) - seconds
        return signer.sign(serializer.dump_payload(payload)).decode()


def forged(app, purpose: str, token: str, change) -> str:
    """`token` with `change(payload)` as its payload but its signature kept, as an attacker could."""
    with app.test_request_context():
        serializer = links._serializer(purpose)
        payload = change(serializer.loads(token))
        _, timestamp, signature = token.rsplit(".", 2)
        return f"{serializer.dump_payload(payload).decode()}.{timestamp}.{signature}"


def altered(token: str) -> str:
    """`token` with one character of its signature changed."""
    return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]


def reset_link(browser, outbox, email: str) -> str:
    outbox.clear()
    assert forgot(browser, email).status_code == 200
    return link_in(mail_to(outbox, email, "Reset"), "/password/reset/")


def opens(browser, path: str) -> int:
    return browser.get(path).status_code


def test_a_reset_link_works_once_and_only_for_its_hour(app, client, alice, outbox):
    path = reset_link(client, outbox, alice.email)
    token = token_of(path)
    assert opens(client, f"/password/reset/{aged(app, 'reset', token, 3600 - 120)}") == 200  # near the end: fine
    assert opens(client, f"/password/reset/{aged(app, 'reset', token, 3600 + 5)}") == 400  # past the hour
    assert post_form(client, path, {"password": NEW_PASSWORD}).status_code == 303
    assert opens(client, path) == 400
    assert post_form(client, path, {"password": "yet another passphrase 7"}, page="/account").status_code == 400


@pytest.mark.parametrize("other_means", ["password change", "sign out everywhere", "address change"])
def test_a_reset_link_dies_when_the_account_changes_by_other_means(app, client, alice, outbox, other_means):
    path = reset_link(client, outbox, alice.email)
    browser = app.test_client()
    attempt(browser, alice.email, PASSWORD)
    if other_means == "password change":
        data = {"current_password": PASSWORD, "password": NEW_PASSWORD}
        assert post_form(browser, "/account/password", data, page="/account").status_code == 303
    elif other_means == "sign out everywhere":
        assert post_form(browser, "/account/sign-out-everywhere", {}, page="/account").status_code == 303
    else:
        # Whoever still reads the old mailbox must not take the account back with a link sent there.
        data = {"email": "alice@new.example", "password_check": PASSWORD}
        assert post_form(browser, "/account/email", data, page="/account").status_code == 303
        confirm = link_in(mail_to(outbox, "alice@new.example", "Confirm"), "/account/email/confirm/")
        assert opens(browser, confirm) == 303
    assert opens(client, path) == 400


def test_tampered_or_transplanted_reset_links_are_refused(app, client, alice, bob, outbox):
    path = reset_link(client, outbox, alice.email)
    token = token_of(path)
    with app.test_request_context():
        verification_for_alice = links.verification_token(db.session.get(User, alice.user_id))
        genuine = links._serializer("reset")
        other_key = URLSafeTimedSerializer("another-secret-" + "y" * 32, salt=genuine.salt)
        resigned = other_key.dumps(genuine.loads(token))
    refused = {
        "alice's link pointed at bob": forged(app, "reset", token, lambda p: {**p, "user": str(bob.user_id)}),
        "a changed signature": altered(token),
        "no signature": token.rsplit(".", 1)[0],
        "signed with another key": resigned,
        "a verification link": verification_for_alice,
        "garbage": "not-a-token",
    }
    for what, bad in refused.items():
        assert opens(client, f"/password/reset/{bad}") == 400, what
    assert opens(client, path) == 200  # the genuine link still works


HOUR, DAY = 3600, 24 * 3600


def verified_at(user_id):
    db.session.expire_all()
    return db.session.execute(select(User.email_verified_at).where(User.id == user_id)).scalar_one()


def test_a_verification_link_is_bound_to_its_person_address_and_day(app, client, alice, outbox):
    assert sign_up(client, "dora@example.com").status_code == 303
    path = link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/")
    token = token_of(path)
    with app.app_context():
        dora_id = db.session.execute(select(User.id).where(User.email == "dora@example.com")).scalar_one()
        reset_for_dora = links.reset_token(db.session.get(User, dora_id))
    refused = {
        "past its day": aged(app, "verify", token, DAY + 5),
        "pointed at alice": forged(app, "verify", token, lambda p: {**p, "user": str(alice.user_id)}),
        "for another address": forged(app, "verify", token, lambda p: {**p, "email": "dora@evil.example"}),
        "a changed signature": altered(token),
        "a reset link": reset_for_dora,
    }
    for what, bad in refused.items():
        assert opens(client, f"/verify/{bad}") == 400, what
    assert verified_at(dora_id) is None
    assert opens(client, f"/verify/{aged(app, 'verify', token, DAY - 120)}") == 303  # late in its day: fine
    first = verified_at(dora_id)
    assert first is not None
    # Opened again it is spent: it changes nothing and records nothing.
    assert opens(client, path) == 303
    assert verified_at(dora_id) == first
    with system_scope():
        events = db.session.execute(select(AuditEvent.action)).scalars().all()
    assert events.count("user.verified") == 1


def test_a_verification_link_dies_with_the_address_it_was_sent_to(app, client, outbox):
    assert sign_up(client, "dora@example.com").status_code == 303
    path = link_in(mail_to(outbox, "dora@example.com", "Verify"), "/verify/")
    attempt(client, "dora@example.com", NEW_PASSWORD)
    data = {"email": "dora@new.example", "password_check": NEW_PASSWORD}
    assert post_form(client, "/account/email", data, page="/account").status_code == 303
    assert opens(client, link_in(mail_to(outbox, "dora@new.example", "Confirm"), "/account/email/confirm/")) == 303
    assert opens(app.test_client(), path) == 400


def test_an_address_change_link_works_once_for_its_person_and_day(app, alice, bob, outbox):
    browser = app.test_client()
    attempt(browser, alice.email, PASSWORD)
    for email in ("alice@one.example", "alice@two.example"):
        data = {"email": email, "password_check": PASSWORD}
        assert post_form(browser, "/account/email", data, page="/account").status_code == 303
    one = link_in(mail_to(outbox, "alice@one.example", "Confirm"), "/account/email/confirm/")
    two = link_in(mail_to(outbox, "alice@two.example", "Confirm"), "/account/email/confirm/")
    token = token_of(one)
    stranger = app.test_client()  # the link works without a session: it is what proves the address
    refused = {
        "past its day": aged(app, "email-change", token, DAY + 5),
        "pointed at bob": forged(
            app, "email-change", token, lambda p: {**p, "user": str(bob.user_id), "old": bob.email}
        ),
        "to the attacker's address": forged(app, "email-change", token, lambda p: {**p, "new": "mallory@evil.example"}),
        "a changed signature": altered(token),
    }
    for what, bad in refused.items():
        assert opens(stranger, f"/account/email/confirm/{bad}") == 400, what
    with app.app_context():
        emails = set(db.session.execute(select(User.email)).scalars())
    assert emails == {alice.email, bob.email}
    assert opens(stranger, f"/account/email/confirm/{aged(app, 'email-change', token, DAY - 120)}") == 303
    assert opens(stranger, one) == 400  # used
    assert opens(stranger, two) == 400  # the address it would change is gone
    with app.app_context():
        assert db.session.get(User, alice.user_id).email == "alice@one.example"


def test_an_invitation_link_works_once_and_only_for_its_week(app, client, alice, outbox):
    owner = app.test_client()
    attempt(owner, alice.email, PASSWORD)
    data = {"email": "dora@example.com", "role": "member"}
    assert post_form(owner, "/team/invitations", data, page="/team").status_code == 303
    path = link_in(mail_to(outbox, "dora@example.com", "invited"), "/invitations/")
    token = token_of(path)
    refused = {
        # The row itself would still be open: the signed date alone refuses it.
        "past its week": aged(app, "invite", token, 7 * DAY + 5),
        "pointed at another invitation": forged(app, "invite", token, lambda p: str(uuid.uuid4())),
        "a changed signature": altered(token),
    }
    for what, bad in refused.items():
        assert opens(client, f"/invitations/{bad}") == 400, what
        assert post_form(client, f"/invitations/{bad}/join", {"password": NEW_PASSWORD}, page="/login").status_code == 400
    assert opens(client, path) == 200
    assert post_form(client, f"{path}/join", {"password": NEW_PASSWORD}, page=path).status_code == 303
    assert opens(app.test_client(), path) == 400
    again = post_form(app.test_client(), f"{path}/join", {"password": "some other passphrase 9"}, page="/login")
    assert again.status_code == 400


# -- session fixation and cookies that outlive their session ---------------------------------


def test_a_session_planted_before_sign_in_is_worthless_after_it(app, alice):
    attacker = app.test_client()
    planted_token = csrf_token(attacker, "/login")  # a fresh anonymous session, and its CSRF token
    planted = attacker.get_cookie("session").value
    victim = app.test_client()
    victim.set_cookie("session", planted)  # e.g. through a sibling domain or a plain-HTTP hop
    assert attempt(victim, alice.email, PASSWORD).status_code == 303

    assert victim.get_cookie("session").value != planted
    now, before = session_data(app, victim), session_data(app, attacker)
    assert now["_user_id"].startswith(str(alice.user_id))
    assert now.get("csrf_token") != before["csrf_token"]
    assert "_user_id" not in before
    # The attacker's copy signs nobody in, and its CSRF token no longer works for the victim.
    assert attacker.get("/account").status_code == 302
    assert attacker.get("/api/endpoints/").status_code == 401
    assert victim.post("/account/sign-out-everywhere", data={"csrf_token": planted_token}).status_code == 400
    assert signed_in(victim)


def test_an_attackers_own_session_planted_in_the_victims_browser_ends_at_sign_in(app, alice, charlie):
    attacker = app.test_client()
    assert attempt(attacker, charlie.email, PASSWORD).status_code == 303
    victim = app.test_client()
    victim.set_cookie("session", attacker.get_cookie("session").value)
    assert attempt(victim, alice.email, PASSWORD, page="/account").status_code == 303  # the login page redirects
    data = session_data(app, victim)
    assert data["_user_id"].startswith(str(alice.user_id))
    assert data["tenant_id"] == str(alice.team_id)  # nothing of charlie's team carried over
    assert session_data(app, attacker)["_user_id"].startswith(str(charlie.user_id))


def test_a_remember_cookie_planted_before_sign_in_does_not_outlive_it(app, alice, charlie):
    # Otherwise, once the victim's browser session ends, the browser is silently the
    # attacker's and whatever the victim adds lands in the attacker's team.
    attacker = app.test_client()
    assert attempt(attacker, charlie.email, PASSWORD, remember=True).status_code == 303
    victim = app.test_client()
    victim.set_cookie("remember_token", attacker.get_cookie("remember_token").value)
    victim.get("/account")  # the planted cookie signs the browser in as charlie...
    assert victim.post("/logout", data={"csrf_token": csrf_token(victim, "/account")}).status_code == 303
    # ...so plant it again after a sign-out, and let the victim sign in without "keep me signed in".
    victim.set_cookie("remember_token", attacker.get_cookie("remember_token").value)
    assert attempt(victim, alice.email, PASSWORD).status_code == 303
    assert victim.get_cookie("remember_token") is None
    victim.delete_cookie("session")  # the browser is closed and opened again
    assert not signed_in(victim)


def test_signing_in_again_issues_new_cookies(app, alice):
    first, second = app.test_client(), app.test_client()
    for browser in (first, second):
        assert attempt(browser, alice.email, PASSWORD, remember=True).status_code == 303
    assert first.get_cookie("session").value != second.get_cookie("session").value
    assert first.get_cookie("remember_token").value != second.get_cookie("remember_token").value


def test_signing_out_kills_every_copy_of_the_session_and_remember_cookies(app, alice):
    browser = app.test_client()
    assert attempt(browser, alice.email, PASSWORD, remember=True).status_code == 303
    session_copy = browser.get_cookie("session").value
    remember_copy = browser.get_cookie("remember_token").value
    other_device = app.test_client()
    assert attempt(other_device, alice.email, PASSWORD).status_code == 303
    assert browser.post("/logout", data={"csrf_token": csrf_token(browser, "/account")}).status_code == 303

    with_session, with_remember = app.test_client(), app.test_client()
    with_session.set_cookie("session", session_copy)
    with_remember.set_cookie("remember_token", remember_copy)
    assert not signed_in(with_session)
    assert not signed_in(with_remember)
    assert signed_in(other_device)  # signing out here is not signing out everywhere


def test_without_redis_signing_out_ends_every_sign_in_instead(make_app, app, alice):
    # Nowhere to record the end of one sign-in: end them all rather than leave copies working.
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    broken.test_client_class = RequestIsolatedClient
    browser, other_device = broken.test_client(), broken.test_client()
    for each in (browser, other_device):
        assert attempt(each, alice.email, PASSWORD).status_code == 303  # a dead Redis does not stop sign-in
    session_copy = browser.get_cookie("session").value
    assert browser.post("/logout", data={"csrf_token": csrf_token(browser, "/account")}).status_code == 303
    stale = broken.test_client()
    stale.set_cookie("session", session_copy)
    assert not signed_in(stale)
    assert not signed_in(other_device)
