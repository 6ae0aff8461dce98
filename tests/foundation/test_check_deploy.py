"""`flask check-deploy` and the production start-up guard: one test per rule."""

from __future__ import annotations

import pytest

from monitorapp import create_app
from monitorapp.config import ConfigError, deploy_problems
from tests.figures import add

GOOD = {
    "SECRET_KEY": "s" * 48,
    "DEBUG": False,
    "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@db/app",
    "REDIS_URL": "redis://redis:6379/0",
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "HSTS_SECONDS": 31536000,
    "BASE_URL": "https://status.example.com",
    "MAIL_BACKEND": "smtp",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_FROM": "monitorapp <alerts@example.com>",
}


def problems_with(**changes) -> list[str]:
    config = dict(GOOD)
    config.update(changes)
    return deploy_problems(config)


def test_good_settings_have_no_problems():
    assert deploy_problems(GOOD) == []


def test_it_flags_the_default_secret_key():
    from monitorapp.config import DEFAULT_SECRET_KEY

    assert any("development default" in p for p in problems_with(SECRET_KEY=DEFAULT_SECRET_KEY))


def test_it_flags_a_short_secret_key():
    assert any("at least 32" in p for p in problems_with(SECRET_KEY="short-secret"))


def test_it_flags_debug_mode():
    assert any("debug" in p for p in problems_with(DEBUG=True))


def test_it_flags_sqlite():
    assert any("SQLite" in p for p in problems_with(SQLALCHEMY_DATABASE_URI="sqlite:///x.db"))


def test_it_flags_a_missing_redis_url():
    assert any("REDIS_URL" in p for p in problems_with(REDIS_URL=None))


def test_it_flags_insecure_session_cookies():
    assert any("SESSION_COOKIE_SECURE" in p for p in problems_with(SESSION_COOKIE_SECURE=False))


def test_it_flags_cookies_readable_from_javascript():
    assert any("HTTPONLY" in p for p in problems_with(SESSION_COOKIE_HTTPONLY=False))


def test_it_flags_missing_hsts():
    assert any("HSTS" in p for p in problems_with(HSTS_SECONDS=0))


def test_it_flags_a_plain_http_base_url():
    assert any("BASE_URL" in p for p in problems_with(BASE_URL="http://status.example.com"))


def test_it_flags_missing_mail_settings():
    assert any("MAIL_SERVER" in p for p in problems_with(MAIL_SERVER=None))
    assert any("MAIL_FROM" in p for p in problems_with(MAIL_FROM=None))


@pytest.fixture
def production_env(monkeypatch):
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BASE_URL", "MAIL_SERVER", "MAIL_FROM", "FLASK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    return monkeypatch


def test_the_command_names_every_problem_of_the_defaults_and_exits_non_zero(production_env):
    from monitorapp.cli import check_deploy

    app = create_app({"SKIP_DEPLOY_CHECK": True})
    result = app.test_cli_runner().invoke(check_deploy)
    assert result.exit_code == 1
    for word in ("SECRET_KEY", "SQLite", "REDIS_URL", "BASE_URL", "MAIL_SERVER"):
        assert word in result.output


def test_the_command_exits_zero_on_good_settings(production_env, tmp_path):
    production_env.setenv("SECRET_KEY", "k" * 40)
    production_env.setenv("DATABASE_URL", "postgres://u@127.0.0.1:1/app")
    production_env.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    production_env.setenv("BASE_URL", "https://status.example.com")
    production_env.setenv("MAIL_SERVER", "smtp.example.com")
    production_env.setenv("MAIL_FROM", "monitorapp <alerts@example.com>")
    from monitorapp.cli import check_deploy

    app = create_app()
    result = app.test_cli_runner().invoke(check_deploy)
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_the_app_refuses_to_start_in_production_naming_the_rule(production_env):
    production_env.setenv("SECRET_KEY", "k" * 40)
    with pytest.raises(ConfigError) as error:
        create_app()
    message = str(error.value)
    assert "refusing to start in production" in message
    assert "REDIS_URL" in message and "SQLite" in message
    assert "SECRET_KEY" not in message


GOOD_ENV = {
    "SECRET_KEY": "k" * 40,
    "DATABASE_URL": "postgres://u@127.0.0.1:1/app",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "BASE_URL": "https://status.example.com",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_FROM": "monitorapp <alerts@example.com>",
}

# One deliberately broken production configuration per rule: the environment
# change (or, where no variable exists, the setting) and the rule's name as the
# refusal must state it.
BROKEN = {
    "default secret": ({"SECRET_KEY": None}, {}, "SECRET_KEY is the development default"),
    "short secret": ({"SECRET_KEY": "short"}, {}, "SECRET_KEY is 5 characters long"),
    "debug": ({"FLASK_DEBUG": "1"}, {}, "debug mode is on"),
    "sqlite database": ({"DATABASE_URL": None}, {}, "DATABASE_URL is unset or SQLite"),
    "sqlite url": ({"DATABASE_URL": "sqlite:////tmp/prod.db"}, {}, "DATABASE_URL is unset or SQLite"),
    "redis": ({"REDIS_URL": None}, {}, "REDIS_URL is not set"),
    "insecure cookies": ({"SESSION_COOKIE_SECURE": "0"}, {}, "SESSION_COOKIE_SECURE is off"),
    "script-readable cookies": ({}, {"SESSION_COOKIE_HTTPONLY": False}, "SESSION_COOKIE_HTTPONLY off"),
    "no hsts": ({"HSTS_SECONDS": "0"}, {}, "HSTS_SECONDS is 0"),
    "http base url": ({"BASE_URL": "http://status.example.com"}, {}, "BASE_URL must be an https://"),
    "no base url": ({"BASE_URL": None}, {}, "BASE_URL must be an https://"),
    "no mail server": ({"MAIL_SERVER": None}, {}, "MAIL_SERVER is not set"),
    "no mail sender": ({"MAIL_FROM": None}, {}, "MAIL_FROM is not set"),
}


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_production_refuses_each_broken_rule_by_name(production_env, rule):
    env_changes, overrides, named = BROKEN[rule]
    for name, value in GOOD_ENV.items():
        production_env.setenv(name, value)
    create_app()  # the good configuration starts
    for name, value in env_changes.items():
        if value is None:
            production_env.delenv(name, raising=False)
        else:
            production_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        create_app(overrides or None)
    message = str(error.value)
    assert "refusing to start in production" in message
    assert named in message
    # Exactly the broken rule: nothing else is reported against a good setting.
    assert message.count("\n  - ") == 1, message
    add("production misconfigurations refused at start-up")
