"""Settings come from the environment, strictly."""

from __future__ import annotations

import ipaddress

import pytest

from monitorapp import create_app
from monitorapp.config import ConfigError, config_for_mode, database_url, env_bool, env_int


def test_it_reads_booleans_in_every_usual_spelling(monkeypatch):
    for raw, expected in [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG") is expected


def test_it_refuses_a_bad_boolean_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "maybe")
    with pytest.raises(ConfigError, match="SESSION_COOKIE_SECURE must be a boolean"):
        config_for_mode("production", "/tmp")


def test_it_refuses_a_bad_integer_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CHECK_RETENTION_DAYS", "thirty")
    with pytest.raises(ConfigError, match="CHECK_RETENTION_DAYS must be an integer"):
        config_for_mode("development", "/tmp")


def test_it_refuses_an_integer_out_of_range(monkeypatch):
    monkeypatch.setenv("MAIL_PORT", "70000")
    with pytest.raises(ConfigError, match="MAIL_PORT must be at most 65535"):
        env_int("MAIL_PORT", 587, minimum=1, maximum=65535)


def test_it_refuses_a_bad_network_list(monkeypatch):
    monkeypatch.setenv("ALLOWED_PRIVATE_NETWORKS", "192.168.1.0/24, not-a-network")
    with pytest.raises(ConfigError, match="ALLOWED_PRIVATE_NETWORKS"):
        config_for_mode("development", "/tmp")


def test_it_reads_allowed_networks(monkeypatch):
    monkeypatch.setenv("ALLOWED_PRIVATE_NETWORKS", "192.168.1.0/24,fd00::/8")
    config = config_for_mode("development", "/tmp")
    assert (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd00::/8")) == config.ALLOWED_PRIVATE_NETWORKS


def test_it_refuses_an_unknown_mode():
    with pytest.raises(ConfigError, match="APP_ENV must be one of"):
        config_for_mode("staging", "/tmp")


def test_a_bad_setting_stops_start_up(monkeypatch):
    monkeypatch.setenv("SCHEDULER_INTERVAL_SECONDS", "soon")
    with pytest.raises(ConfigError, match="SCHEDULER_INTERVAL_SECONDS"):
        create_app({"MODE": "testing"})


def test_database_url_defaults_to_sqlite_under_the_instance_folder():
    assert database_url(None, "/srv/instance") == "sqlite:////srv/instance/monitorapp.sqlite3"


def test_database_url_accepts_herokus_postgres_scheme_with_psycopg3():
    assert database_url("postgres://u:p@db:5432/app", "/x") == "postgresql+psycopg://u:p@db:5432/app"
    assert database_url("postgresql://u@db/app", "/x") == "postgresql+psycopg://u@db/app"


def test_postgres_engine_pre_pings_its_pool(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/app")
    config = config_for_mode("development", "/tmp")
    assert config.SQLALCHEMY_ENGINE_OPTIONS["pool_pre_ping"] is True


def test_development_without_redis_url_uses_the_embedded_redis(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    from monitorapp.queues import get_redis, stop_embedded_redis

    try:
        app = create_app({"MODE": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/db.sqlite3"})
        assert app.config["REDIS_URL"].startswith("unix://")
        with app.app_context():
            assert get_redis().ping() is True
            get_redis().set("probe", "1")
            assert get_redis().get("probe") == b"1"
        assert (tmp_path / "redis").is_dir()
    finally:
        stop_embedded_redis(str(tmp_path))


def test_production_never_uses_the_embedded_redis(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = config_for_mode("production", "/tmp")
    assert config.EMBEDDED_REDIS is False


def test_base_url_follows_port_in_development(monkeypatch):
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "5077")
    assert config_for_mode("development", "/tmp").BASE_URL == "http://127.0.0.1:5077"
