"""Fixtures for the accounts, teams and tokens tests."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from monitorapp import mail
from tests.conftest import csrf_token


class RequestIsolatedClient(FlaskClient):
    """A test client whose every request gets a fresh app context, as in production.

    The suite's `ctx` fixture keeps an app context pushed for the whole test,
    and Flask reuses it for requests, so `g` — Flask-Login's cached user,
    Flask-WTF's CSRF token — would leak from one request (and one client) to
    the next and hide exactly the session bugs these tests look for.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def _isolated_requests(app):
    app.test_client_class = RequestIsolatedClient


@pytest.fixture
def client(app, _isolated_requests):
    return app.test_client()


@pytest.fixture(autouse=True)
def outbox():
    """The mail the app "sent" during the test, oldest first."""
    mail.outbox.clear()
    yield mail.outbox
    mail.outbox.clear()


def mail_to(outbox, address: str, subject_contains: str = ""):
    """The one message in the outbox to `address` whose subject contains the words."""
    found = [m for m in outbox if m["To"] == address and subject_contains in m["Subject"]]
    subjects = [m["Subject"] for m in outbox]
    assert len(found) == 1, f"expected one mail to {address} about {subject_contains!r}, got {subjects}"
    return found[0]


def link_in(message, path_part: str) -> str:
    """The path of the link containing `path_part` in a mail body (host stripped)."""
    paths = [path for path in re.findall(r"https?://[^/\s]+(/\S*)", message.get_content()) if path_part in path]
    assert len(paths) == 1, f"no single link with {path_part} in:\n{message.get_content()}"
    return paths[0]


def post_form(client, path: str, data: dict, page: str | None = None, **kwargs):
    """POST a form the way a browser would, with the session's CSRF token."""
    token = csrf_token(client, page or path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


NEW_PASSWORD = "a fresh unusual passphrase 42"
