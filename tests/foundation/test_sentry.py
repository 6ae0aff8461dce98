"""Sentry is wired only when SENTRY_DSN is set, without PII."""

from __future__ import annotations

import sentry_sdk


def test_no_dsn_means_no_sentry(make_app):
    sentry_sdk.init()  # reset to a client without a DSN
    before = sentry_sdk.get_client()
    make_app()
    assert sentry_sdk.get_client() is before
    assert sentry_sdk.get_client().dsn is None


def test_a_dsn_turns_sentry_on_without_pii(make_app):
    try:
        make_app(SENTRY_DSN="https://public@sentry.invalid/1")
        client = sentry_sdk.get_client()
        assert client.is_active()
        assert client.options["send_default_pii"] is False
        names = {type(integration).__name__ for integration in client.integrations.values()}
        assert {"FlaskIntegration", "RqIntegration", "RedisIntegration", "SqlalchemyIntegration"} <= names
    finally:
        sentry_sdk.init()
