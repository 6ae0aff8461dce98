"""Settings, read from the environment only, one class per mode.

Every value comes from an environment variable (a `.env` file is honoured in
development). The readers are strict: a boolean that is not a boolean or an
integer that is not an integer stops start-up with a message naming the
variable, instead of quietly running with a default nobody chose.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

from monitorapp import __version__

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 (refused in production)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting in the environment has a value the app cannot use."""


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {number}")
    return number


def env_int_list(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of non-negative integers, for example `10,30,60`.

    Unset means the default; set but empty means none (`CHECK_RETRY_INTERVALS=`: no retries).
    """
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a comma-separated list of integers, got {value!r}") from None
    if any(number < 0 for number in numbers):
        raise ConfigError(f"{name} must not contain negative numbers, got {value!r}")
    return numbers


ACCOUNT_RATE_LIMITS = (
    "RATELIMIT_LOGIN_IP",
    "RATELIMIT_LOGIN_ACCOUNT",
    "RATELIMIT_REGISTER",
    "RATELIMIT_PASSWORD_RESET",
    "RATELIMIT_VERIFY_RESEND",
    "RATELIMIT_INVITE",
)


def env_rate_limit(name: str) -> str | None:
    """A Flask-Limiter limit such as `5 per minute;20 per hour`, checked at start-up."""
    value = env_str(name)
    if value is None:
        return None
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit such as '5 per minute;20 per hour', got {value!r}") from None
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def env_networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of CIDRs, for example `192.168.1.0/24,fd00::/8`."""
    value = os.environ.get(name, "")
    networks = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError as exc:
            raise ConfigError(f"{name} must be a comma-separated list of networks in CIDR form: {exc}") from None
    return tuple(networks)


def database_url(raw: str | None, instance_path: str) -> str:
    """Normalise DATABASE_URL: Heroku's `postgres://` and psycopg 3 as the driver."""
    if not raw:
        return "sqlite:///" + str(Path(instance_path) / "monitorapp.sqlite3")
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # A busy timeout keeps the web, the worker and the scheduler from failing
        # with "database is locked" when they write to one SQLite file at once.
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": True,
        "pool_size": env_int("DATABASE_POOL_SIZE", 5, minimum=1),
        "max_overflow": env_int("DATABASE_MAX_OVERFLOW", 5, minimum=0),
        "pool_recycle": 300,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": 5, "application_name": "monitorapp"},
    }


class Config:
    """Settings shared by every mode; read when the class is instantiated."""

    MODE = "base"
    DEBUG = False
    TESTING = False

    def __init__(self, instance_path: str) -> None:
        self.SECRET_KEY = env_str("SECRET_KEY", DEFAULT_SECRET_KEY)
        # In development the default follows PORT, so links in mails point at `make run`.
        self.BASE_URL = env_str("BASE_URL", f"http://127.0.0.1:{env_int('PORT', 5000, minimum=1, maximum=65535)}")
        self.SQLALCHEMY_DATABASE_URI = database_url(env_str("DATABASE_URL"), instance_path)
        self.SQLALCHEMY_ENGINE_OPTIONS = engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.REDIS_URL = env_str("REDIS_URL")
        self.DEBUG = env_bool("FLASK_DEBUG", self.DEBUG)

        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_DURATION = timedelta(days=env_int("REMEMBER_DAYS", 30, minimum=1))
        self.PERMANENT_SESSION_LIFETIME = timedelta(hours=env_int("SESSION_HOURS", 12, minimum=1))
        self.HSTS_SECONDS = env_int("HSTS_SECONDS", 0, minimum=0)
        self.PREFERRED_URL_SCHEME = "https" if (self.BASE_URL or "").startswith("https") else "http"
        self.PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 0, minimum=0)
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 64 * 1024, minimum=1024)

        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.WTF_CSRF_SSL_STRICT = True

        self.MAIL_SERVER = env_str("MAIL_SERVER")
        self.MAIL_PORT = env_int("MAIL_PORT", 587, minimum=1, maximum=65535)
        self.MAIL_USERNAME = env_str("MAIL_USERNAME")
        self.MAIL_PASSWORD = env_str("MAIL_PASSWORD")
        self.MAIL_USE_TLS = env_bool("MAIL_USE_TLS", True)
        self.MAIL_USE_SSL = env_bool("MAIL_USE_SSL", False)
        self.MAIL_FROM = env_str("MAIL_FROM", "monitorapp <monitorapp@localhost>")
        self.MAIL_BACKEND = env_str("MAIL_BACKEND", "smtp" if self.MAIL_SERVER else "console")

        self.SENTRY_DSN = env_str("SENTRY_DSN")
        self.METRICS_TOKEN = env_str("METRICS_TOKEN")
        # Benchmarks only: answer X-Query-Count with the SQL statements per request.
        self.QUERY_COUNT_HEADER = env_bool("QUERY_COUNT_HEADER", False)
        self.RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_HEADERS_ENABLED = True
        # Accounts' limits (README, Rate limits); unset keeps the default in auth/views.py.
        for name in ACCOUNT_RATE_LIMITS:
            setattr(self, name, env_rate_limit(name))
        # Requests per API token (or per address without one) to /api/endpoints/.
        self.API_RATE_LIMIT = env_rate_limit("API_RATE_LIMIT") or "600 per minute"

        self.ALLOWED_PRIVATE_NETWORKS = env_networks("ALLOWED_PRIVATE_NETWORKS")
        self.CHECK_TIMEOUT_SECONDS = env_float("CHECK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
        self.CHECK_MAX_BODY_BYTES = env_int("CHECK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
        self.CHECK_MAX_REDIRECTS = env_int("CHECK_MAX_REDIRECTS", 5, minimum=0, maximum=20)
        self.CHECK_CA_BUNDLE = env_str("CHECK_CA_BUNDLE")
        self.CHECK_RETRY_INTERVALS = env_int_list("CHECK_RETRY_INTERVALS", (10, 30, 60))
        self.CHECK_RETENTION_DAYS = env_int("CHECK_RETENTION_DAYS", 30, minimum=1)
        self.ROLLUP_RETENTION_DAYS = env_int("ROLLUP_RETENTION_DAYS", 365, minimum=1)
        # Notification channels (notify/): the key for their encrypted targets (derived from
        # SECRET_KEY when unset), the send timeout and the retry backoff of a failed send.
        self.NOTIFY_ENCRYPTION_KEY = env_str("NOTIFY_ENCRYPTION_KEY")
        self.NOTIFY_TIMEOUT_SECONDS = env_float("NOTIFY_TIMEOUT_SECONDS", 10.0, minimum=0.1)
        self.NOTIFY_RETRY_INTERVALS = env_int_list("NOTIFY_RETRY_INTERVALS", (10, 60, 300))
        self.SCHEDULER_INTERVAL_SECONDS = env_int("SCHEDULER_INTERVAL_SECONDS", 30, minimum=1)
        self.SCHEDULER_BATCH_SIZE = env_int("SCHEDULER_BATCH_SIZE", 500, minimum=1)
        # Endpoints due within this window are claimed now and started at their due
        # second from RQ's scheduled registry (default: one tick).
        self.SCHEDULER_LOOKAHEAD_SECONDS = env_int(
            "SCHEDULER_LOOKAHEAD_SECONDS", self.SCHEDULER_INTERVAL_SECONDS, minimum=0, maximum=3600
        )
        self.SCHEDULER_HEARTBEAT_MAX_AGE = env_int("SCHEDULER_HEARTBEAT_MAX_AGE", 120, minimum=1)
        # Checks in flight per worker process (threads mostly wait on sockets; see the README, Checks).
        self.CHECK_THREADS = env_int("CHECK_THREADS", 200, minimum=1, maximum=512)
        self.USER_AGENT = f"monitorapp/{__version__} (+https://github.com/monitorapp/monitorapp)"
        self.LOG_FORMAT = env_str("LOG_FORMAT", "json" if self.MODE == "production" else "text")
        self.LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()


class DevelopmentConfig(Config):
    MODE = "development"
    DEBUG = False  # the debugger stays off unless FLASK_DEBUG=1 asks for it

    def __init__(self, instance_path: str) -> None:
        super().__init__(instance_path)
        self.EMBEDDED_REDIS = self.REDIS_URL is None


class TestingConfig(Config):
    MODE = "testing"
    TESTING = True

    def __init__(self, instance_path: str) -> None:
        super().__init__(instance_path)
        self.EMBEDDED_REDIS = self.REDIS_URL is None
        self.MAIL_BACKEND = "console"
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.SERVER_NAME = None


class ProductionConfig(Config):
    MODE = "production"

    def __init__(self, instance_path: str) -> None:
        super().__init__(instance_path)
        self.EMBEDDED_REDIS = False
        self.SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.HSTS_SECONDS = env_int("HSTS_SECONDS", 31536000, minimum=0)
        self.PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 1, minimum=0)
        if self.SESSION_COOKIE_SECURE:
            self.SESSION_COOKIE_NAME = "__Host-session"
            self.REMEMBER_COOKIE_NAME = "__Host-remember_token"
        self.MAIL_BACKEND = env_str("MAIL_BACKEND", "smtp")


MODES = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for_mode(mode: str | None, instance_path: str) -> Config:
    mode = (mode or "development").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"APP_ENV must be one of {', '.join(MODES)}, got {mode!r}")
    return MODES[mode](instance_path)


def deploy_problems(config: dict) -> list[str]:
    """Every reason this configuration is unsafe to run in production."""
    problems = []
    secret = config.get("SECRET_KEY") or ""
    if secret == DEFAULT_SECRET_KEY:
        problems.append("SECRET_KEY is the development default; set a random value of at least 32 characters")
    elif len(secret) < 32:
        problems.append(f"SECRET_KEY is {len(secret)} characters long; use at least 32")
    if config.get("DEBUG"):
        problems.append("debug mode is on (FLASK_DEBUG); turn it off in production")
    if str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        problems.append("DATABASE_URL is unset or SQLite; production needs PostgreSQL")
    if not config.get("REDIS_URL"):
        problems.append("REDIS_URL is not set; production needs a Redis server")
    if not config.get("SESSION_COOKIE_SECURE") or not config.get("REMEMBER_COOKIE_SECURE"):
        problems.append("SESSION_COOKIE_SECURE is off; cookies would travel over plain HTTP")
    if not config.get("SESSION_COOKIE_HTTPONLY"):
        problems.append("session cookies are readable from JavaScript (SESSION_COOKIE_HTTPONLY off)")
    if not config.get("HSTS_SECONDS"):
        problems.append("HSTS_SECONDS is 0; browsers would not be told to insist on HTTPS")
    if not str(config.get("BASE_URL") or "").startswith("https://"):
        problems.append("BASE_URL must be an https:// address in production")
    if config.get("MAIL_BACKEND") == "smtp" and not config.get("MAIL_SERVER"):
        problems.append("MAIL_SERVER is not set; sign-up, reset and alert mails cannot be sent")
    if not config.get("MAIL_FROM") or config.get("MAIL_FROM", "").endswith("@localhost>"):
        problems.append("MAIL_FROM is not set to a real sender address")
    return problems
