"""monitorapp: a multi-tenant HTTP endpoint monitor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

__version__ = "0.1.0"

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides settings read from the environment."""
    from monitorapp.config import config_for_mode

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=os.environ.get("INSTANCE_PATH") or str(ROOT / "instance"),
    )
    mode = (config or {}).get("MODE") or os.environ.get("APP_ENV", "development")
    if mode == "development":
        _load_dotenv()
    app.config.from_object(config_for_mode(mode, app.instance_path))
    if config:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    register_logging(app)
    enforce_production_settings(app)
    register_redis(app)
    register_extensions(app)
    register_sentry(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_web(app)
    register_commands(app)
    return app


def _load_dotenv() -> None:
    from dotenv import load_dotenv

    load_dotenv(ROOT / ".env", override=False)


def register_logging(app: Flask) -> None:
    from monitorapp.logging import configure_logging

    configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])


def enforce_production_settings(app: Flask) -> None:
    """In production, refuse to start on an unsafe configuration."""
    from monitorapp.config import ConfigError, deploy_problems

    if app.config["MODE"] != "production" or app.config.get("SKIP_DEPLOY_CHECK"):
        return
    problems = deploy_problems(app.config)
    if problems:
        raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))


def register_redis(app: Flask) -> None:
    if not app.config.get("REDIS_URL") and app.config.get("EMBEDDED_REDIS"):
        from monitorapp.queues import ensure_embedded_redis

        app.config["REDIS_URL"] = ensure_embedded_redis(app.instance_path)


def register_extensions(app: Flask) -> None:
    from monitorapp.auth.session import init_login
    from monitorapp.extensions import csrf, db, limiter, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        # limits spells a Unix-socket Redis (the embedded one) redis+unix://.
        # No Redis at all only happens under `flask check-deploy`, which reports it.
        url = app.config.get("REDIS_URL") or "memory://"
        app.config["RATELIMIT_STORAGE_URI"] = "redis+" + url if url.startswith("unix://") else url
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})
    # A dead Redis must not take sign-in down with it: fall back to memory.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    init_login(app)

    import monitorapp.models  # noqa: F401  (register the models with the metadata)


def register_sentry(app: Flask) -> None:
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.redis import RedisIntegration
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=app.config["MODE"],
        release=f"monitorapp@{__version__}",
        send_default_pii=False,
        integrations=[FlaskIntegration(), RqIntegration(), RedisIntegration(), SqlalchemyIntegration()],
    )


def register_blueprints(app: Flask) -> None:
    from monitorapp.alerts import bp as alerts_bp
    from monitorapp.api import bp as api_bp
    from monitorapp.auth import bp as auth_bp
    from monitorapp.dashboard import bp as dashboard_bp
    from monitorapp.health import bp as health_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(alerts_bp)


def register_errorhandlers(app: Flask) -> None:
    from monitorapp.errors import register

    register(app)


def register_web(app: Flask) -> None:
    from monitorapp.web import register

    register(app)


def register_commands(app: Flask) -> None:
    from monitorapp.cli import register

    register(app)
