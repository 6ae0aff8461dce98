"""Fixtures shared by the whole suite.

The suite runs against `DATABASE_URL` and `REDIS_URL` when they are set (CI
points them at real PostgreSQL and Redis) and otherwise against the embedded
defaults: a SQLite file and the embedded redis-server, both in a temporary
folder. Nothing is faked: every test talks to a real database and a real Redis.

Named actors, as in Healthchecks' suite: alice owns team A, bob is a member
and victor a viewer there; charlie owns team B, a stranger to A.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from monitorapp import create_app
from monitorapp.extensions import db
from monitorapp.models import ApiToken, Membership, Role, Tenant, TokenScope, User, utcnow
from monitorapp.queues import connect, ensure_embedded_redis, stop_embedded_redis
from monitorapp.tenancy import system_scope

PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_report_header(config) -> list[str]:
    return [
        f"monitorapp database: {_redacted(os.environ.get('DATABASE_URL')) or 'embedded SQLite'}",
        f"monitorapp redis: {_redacted(os.environ.get('REDIS_URL')) or 'embedded redis-server'}",
        f"monitorapp browser tests: {'chromium at ' + CHROMIUM if CHROMIUM else 'SKIPPED (no chromium found)'}",
    ]


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.figures import FIGURES

    if FIGURES:
        terminalreporter.section("hardening figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")


def _requirements() -> tuple[bool, bool, bool]:
    on_postgres = (os.environ.get("DATABASE_URL") or "").startswith("postgres")
    return (
        on_postgres,
        os.environ.get("MONITORAPP_REQUIRE_POSTGRES") == "1",
        os.environ.get("MONITORAPP_REQUIRE_BROWSER") == "1",
    )


def pytest_runtest_setup(item) -> None:
    """Skip PostgreSQL-only and browser tests where they cannot run — or fail them.

    CI sets MONITORAPP_REQUIRE_POSTGRES=1 in its PostgreSQL run and
    MONITORAPP_REQUIRE_BROWSER=1 in both runs, so a test that would be
    skipped there fails instead of passing unnoticed.
    """
    on_postgres, require_postgres, require_browser = _requirements()
    if item.get_closest_marker("postgres") and not on_postgres:
        if require_postgres:
            pytest.fail("needs PostgreSQL, but DATABASE_URL is not PostgreSQL in a run that requires it")
        pytest.skip("needs PostgreSQL (set DATABASE_URL to run it)")
    if item.get_closest_marker("browser") and not CHROMIUM:
        if require_browser:
            pytest.fail("browser test, but no chromium was found in a run that requires browser tests")
        pytest.skip("browser tests skipped: no chromium found (apt-get install chromium)")


def _redacted(url: str | None) -> str | None:
    if not url:
        return None
    from monitorapp.logging import redact_url

    return redact_url(url)


@pytest.fixture(scope="session")
def test_instance_path() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="monitorapp-test-")
    yield path
    stop_embedded_redis(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(test_instance_path: str) -> str:
    from monitorapp.config import database_url as normalise

    return normalise(os.environ.get("DATABASE_URL"), test_instance_path)


@pytest.fixture(scope="session")
def redis_url(test_instance_path: str) -> str:
    return os.environ.get("REDIS_URL") or ensure_embedded_redis(test_instance_path)


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def base_config(database_url: str, redis_url: str, instance_path: str) -> dict:
    return {
        "MODE": "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "INSTANCE_PATH": instance_path,
        "RATELIMIT_STORAGE_URI": "memory://",
        "CHECK_RETRY_INTERVALS": (0, 0, 0),
        "CHECK_TIMEOUT_SECONDS": 3.0,
        "SERVER_NAME": None,
    }


@pytest.fixture(scope="session")
def _schema(database_url: str, redis_url: str, test_instance_path: str) -> None:
    """Create the tables once per session, from the models."""
    app = create_app(base_config(database_url, redis_url, test_instance_path))
    with app.app_context():
        with system_scope():
            db.drop_all()
            if database_url.startswith("postgresql"):
                db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
                db.session.commit()
            db.create_all()
        db.engine.dispose()


def _empty_database() -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("TRUNCATE " + ", ".join(f'"{name}"' for name in tables) + " RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f'DELETE FROM "{name}"'))
    db.session.commit()


@pytest.fixture
def make_app(database_url: str, redis_url: str, test_instance_path: str, _schema):
    """Build an app with overrides: `make_app(CHECK_TIMEOUT_SECONDS=1)`."""
    apps = []

    def factory(**overrides):
        config = base_config(database_url, redis_url, test_instance_path)
        config.update(overrides)
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def fresh(app, redis_url: str):
    """Yield `app` over an empty database and Redis; return its session afterwards.

    Folder conftests that need other settings use it: `yield from fresh(make_app(...), redis_url)`.
    """
    with app.app_context():
        _empty_database()
        connect(redis_url).flushdb()
    yield app
    with app.app_context():
        db.session.remove()


@pytest.fixture
def app(make_app, redis_url: str):
    yield from fresh(make_app(), redis_url)


@pytest.fixture
def ctx(app):
    """An app context for tests that use the models directly."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def redis_client(redis_url: str):
    return connect(redis_url)


# -- people and teams -------------------------------------------------------


@dataclass
class Actor:
    """A person in the tests, with what they need to act."""

    user_id: uuid.UUID
    email: str
    team_id: uuid.UUID
    role: Role
    password: str = PASSWORD


def make_team(name: str) -> Tenant:
    team = Tenant(name=name)
    db.session.add(team)
    db.session.flush()
    return team


def make_user(email: str, team: Tenant, role: Role = Role.OWNER, verified: bool = True) -> User:
    with system_scope():
        user = User(email=email, email_verified_at=utcnow() if verified else None)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
        db.session.add(Membership(user_id=user.id, tenant_id=team.id, role=role.value))
        db.session.commit()
    return user


def add_member(user: User, team: Tenant, role: Role) -> None:
    with system_scope():
        db.session.add(Membership(user_id=user.id, tenant_id=team.id, role=role.value))
        db.session.commit()


def make_token(actor: Actor, scope: TokenScope = TokenScope.WRITE, name: str = "test") -> str:
    """Create an API token for `actor` directly in the database; return its secret."""
    from monitorapp.auth.session import TOKEN_PREFIX

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with system_scope():
        db.session.add(
            ApiToken(
                user_id=actor.user_id,
                tenant_id=actor.team_id,
                name=name,
                prefix=secret[: len(TOKEN_PREFIX) + 6],
                token_hash=ApiToken.hash_secret(secret),
                scope=scope.value,
            )
        )
        db.session.commit()
    return secret


@pytest.fixture
def team_a(ctx) -> Tenant:
    team = make_team("Team A")
    db.session.commit()
    return team


@pytest.fixture
def team_b(ctx) -> Tenant:
    team = make_team("Team B")
    db.session.commit()
    return team


def _actor(email: str, team: Tenant, role: Role) -> Actor:
    user = make_user(email, team, role)
    return Actor(user.id, email, team.id, role)


@pytest.fixture
def alice(team_a) -> Actor:
    return _actor("alice@example.com", team_a, Role.OWNER)


@pytest.fixture
def bob(team_a) -> Actor:
    return _actor("bob@example.com", team_a, Role.MEMBER)


@pytest.fixture
def victor(team_a) -> Actor:
    return _actor("victor@example.com", team_a, Role.VIEWER)


@pytest.fixture
def charlie(team_b) -> Actor:
    return _actor("charlie@example.com", team_b, Role.OWNER)


def login(client, actor: Actor) -> None:
    """Sign `actor` in on the test client without going through the form."""
    with client.application.app_context():
        user = db.session.get(User, actor.user_id)
        user_id = user.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
        session["tenant_id"] = str(actor.team_id)


@pytest.fixture
def auth(client):
    """`auth.login(alice)` signs a named actor in on the test client."""

    class Auth:
        def login(self, actor: Actor) -> None:
            login(client, actor)

        def logout(self) -> None:
            with client.session_transaction() as session:
                session.clear()

    return Auth()


def csrf_token(client, path: str = "/") -> str:
    """The CSRF token of the client's session, as a page would embed it."""
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


# -- servers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, app) -> None:
        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    """The app served over real HTTP in a thread, for the browser tests."""
    server = LiveServer(app).start()
    yield server
    server.stop()


# -- browser ----------------------------------------------------------------


@pytest.fixture(scope="session")
def _playwright():
    if not CHROMIUM:
        if _requirements()[2]:
            pytest.fail("browser test, but no chromium was found in a run that requires browser tests")
        pytest.skip("browser tests skipped: no chromium found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def _chromium(_playwright):
    browser = _playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
    yield browser
    browser.close()


class PageWatcher:
    """Collects console errors, CSP violations and dialogs from a page."""

    def __init__(self, page) -> None:
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.on("dialog", self._on_dialog)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    @property
    def csp_violations(self) -> list[str]:
        return [error for error in self.console_errors if "Content Security Policy" in error]


@pytest.fixture
def browser_context(_chromium):
    context = _chromium.new_context()
    yield context
    context.close()


@pytest.fixture
def page(browser_context):
    """A Chromium page whose `watcher` collects console errors and CSP violations."""
    page = browser_context.new_page()
    page.watcher = PageWatcher(page)
    yield page
    page.close()


@pytest.fixture
def browser_login(live_server):
    """Sign `actor` in through the real login form in `page`."""

    def do_login(page, actor: Actor) -> None:
        page.goto(live_server.url + "/login")
        page.fill("input[name=email]", actor.email)
        page.fill("input[name=password]", actor.password)
        page.click("form#login-form button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url)

    return do_login


# -- endpoints ------------------------------------------------------------------


def add_endpoints(team_id: uuid.UUID, count: int, prefix: str = "svc", **fields) -> list:
    """Insert `count` endpoints for a team straight into the database, oldest first.

    Names and URLs are `<prefix>-000`, `<prefix>-001`, …; each is one second
    newer than the one before, so newest-first order is the reverse.
    """
    from datetime import timedelta

    from monitorapp.models import Endpoint
    from monitorapp.tenancy import tenant_scope

    start = utcnow() - timedelta(days=1)
    with tenant_scope(team_id):
        rows = [
            Endpoint(
                id=uuid.uuid4(),
                tenant_id=team_id,
                name=f"{prefix}-{number:03d}",
                url=f"https://{prefix}-{number:03d}.example.com/",
                created_at=start + timedelta(seconds=number),
                **fields,
            )
            for number in range(count)
        ]
        db.session.add_all(rows)
        db.session.commit()
        ids = [row.id for row in rows]
    db.session.expunge_all()
    return ids
