"""The data model. Team-owned models inherit `TenantScoped` (see tenancy.py)."""

from __future__ import annotations

import enum
import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from flask_login import UserMixin
from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from monitorapp.extensions import db
from monitorapp.tenancy import TenantScoped

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigIntId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every database, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Role(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def can_write(self) -> bool:
        return self in (Role.OWNER, Role.MEMBER)

    @property
    def can_manage(self) -> bool:
        return self is Role.OWNER


class EndpointStatus(enum.StrEnum):
    PENDING = "pending"
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"


class TokenScope(enum.StrEnum):
    READ = "read"
    WRITE = "write"


class Tenant(db.Model):
    """A team: the unit of isolation. Called a team everywhere a user looks."""

    __tablename__ = "tenant"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by a password change or "sign out everywhere"; every session
    # carries the version it was made with and dies when they differ.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    def get_id(self) -> str:
        # Flask-Login stores this in the session and the remember cookie; the
        # session version inside it makes old cookies worthless after a bump.
        return f"{self.id}:{self.session_version}"


class Membership(TenantScoped, db.Model):
    """A user's place in a team, with a role."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=Role.MEMBER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")
    tenant: Mapped[Tenant] = relationship(lazy="joined")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class Invitation(TenantScoped, db.Model):
    __tablename__ = "invitation"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=Role.MEMBER.value)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(TenantScoped, db.Model):
    """A personal API token for one user in one team; only its hash is stored."""

    __tablename__ = "api_token"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scope: Mapped[str] = mapped_column(String(8), nullable=False, default=TokenScope.READ.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @staticmethod
    def hash_secret(secret: str) -> str:
        # The secret is 256 random bits, so a fast hash is enough (no KDF needed).
        return hashlib.sha256(secret.encode()).hexdigest()


class AuditEvent(TenantScoped, db.Model):
    """Who did what in a team. Events with no team (a failed login for an
    unknown address) go to the `monitors.audit` log only."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict] = mapped_column(db.JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    actor: Mapped[User | None] = relationship()


class Endpoint(TenantScoped, db.Model):
    """A URL a team monitors."""

    __tablename__ = "endpoint"
    __table_args__ = (
        UniqueConstraint("tenant_id", "url"),
        CheckConstraint("interval_minutes >= 1 AND interval_minutes <= 1440", name="interval_range"),
        # The dashboard: newest first within a team.
        Index("ix_endpoint_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_endpoint_tenant_last_enqueued", "tenant_id", "last_enqueued_at"),
        Index("ix_endpoint_tenant_last_checked", "tenant_id", "last_checked_at"),
        # The dashboard banner's counts by status: an index-only scan instead of
        # reading every row (15 ms → 3 ms at 100,000 endpoints, bench/web.py).
        Index("ix_endpoint_tenant_paused_status", "tenant_id", "paused", "status"),
        # The dashboard's search (ILIKE '%…%' on name or URL): trigram indexes on
        # PostgreSQL (pg_trgm), 65 ms → about 1 ms at 100,000 endpoints (bench/web.py).
        # On SQLite they are plain indexes that the search does not use.
        Index("ix_endpoint_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_endpoint_url_trgm", "url", postgresql_using="gin", postgresql_ops={"url": "gin_trgm_ops"}),
        # The scheduler's due query: unpaused endpoints by next due time.
        Index(
            "ix_endpoint_due",
            "next_check_at",
            postgresql_where=text("NOT paused"),
            sqlite_where=text("paused = 0"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    interval_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=EndpointStatus.PENDING.value)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the scheduler should next claim this endpoint (see monitoring/scheduler.py).
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    # Alerting (monitoring/incidents.py): down after `failure_threshold` failed checks in a
    # row, up again after `recovery_threshold` successes; the streaks count towards them.
    failure_threshold: Mapped[int] = mapped_column(Integer, nullable=False, default=2, server_default="2")
    recovery_threshold: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    consecutive_successes: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failed check of the streak

    tenant: Mapped[Tenant] = relationship()

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or self.url

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)


# The trigram indexes above need the pg_trgm extension (the migration creates it too).
event.listen(
    Endpoint.__table__,
    "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),
)


class CheckResult(TenantScoped, db.Model):
    """One check of one endpoint (kept CHECK_RETENTION_DAYS, then rolled up)."""

    __tablename__ = "check_result"
    __table_args__ = (
        # The endpoint page (latest checks) and uptime over a window; on PostgreSQL the
        # index alone answers uptime and latency questions (an index-only scan).
        Index(
            "ix_check_result_endpoint_checked",
            "endpoint_id",
            "checked_at",
            postgresql_include=["ok", "latency_ms"],
        ),
        # Retention: the daily prune deletes the oldest rows.
        Index("ix_check_result_checked", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), nullable=False)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class CheckRollup(TenantScoped, db.Model):
    """One endpoint's checks on one UTC day (kept ROLLUP_RETENTION_DAYS)."""

    __tablename__ = "check_rollup"

    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    checks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    downtime_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    avg_latency_ms: Mapped[float | None] = mapped_column(Float)
    p95_latency_ms: Mapped[float | None] = mapped_column(Float)

    @property
    def uptime_percent(self) -> float:
        """The share of the day the endpoint was up (see monitoring/history.py)."""
        return 100.0 * (1 - min(self.downtime_seconds or 0, 86400) / 86400)


__all__ = [
    "ApiToken",
    "AuditEvent",
    "CheckResult",
    "CheckRollup",
    "Endpoint",
    "EndpointStatus",
    "Invitation",
    "Membership",
    "Role",
    "Tenant",
    "TokenScope",
    "User",
]


# -- alerting: incidents and notification channels (issue 6) -------------------


class Incident(TenantScoped, db.Model):
    """An endpoint's time down: opened and resolved by monitoring/incidents.py."""

    __tablename__ = "incident"
    __table_args__ = (
        # The last line of defence against two workers opening two incidents at once.
        Index(
            "uq_incident_open_endpoint",
            "endpoint_id",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
        Index("ix_incident_endpoint_started", "endpoint_id", "started_at"),
        Index("ix_incident_tenant_started", "tenant_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_error: Mapped[str | None] = mapped_column(String(255))
    failed_checks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    last_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[Endpoint] = relationship()
    acknowledged_by: Mapped[User | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def duration(self) -> timedelta:
        """How long the endpoint was (or has been, while open) down."""
        return (self.resolved_at or utcnow()) - self.started_at


class NotificationChannel(TenantScoped, db.Model):
    """Where a team's alerts go: an email list, an Apprise URL or a webhook (see notify/)."""

    __tablename__ = "notification_channel"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # The URL with its tokens, Fernet-encrypted (notify/secrets.py); never shown again in full.
    target_encrypted: Mapped[str | None] = mapped_column(db.Text)
    target_hint: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    # Email channels: the ids (as strings) of the team members who receive the mail.
    email_recipients: Mapped[list] = mapped_column(db.JSON, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    all_endpoints: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # While an incident stays open and unacknowledged, remind every N hours (0: never).
    reminder_hours: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class ChannelEndpoint(TenantScoped, db.Model):
    """An endpoint a channel covers, for channels that do not cover all of them."""

    __tablename__ = "channel_endpoint"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_channel.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"), primary_key=True)


class NotificationDelivery(TenantScoped, db.Model):
    """One event sent (or being sent) to one channel: the idempotency record."""

    __tablename__ = "notification_delivery"
    __table_args__ = (UniqueConstraint("channel_id", "event_key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_channel.id", ondelete="CASCADE"), nullable=False
    )
    event_key: Mapped[str] = mapped_column(String(120), nullable=False)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), index=True)
    # The rendered notification (notify.Notification as a dict), fixed when the event happened.
    payload: Mapped[dict] = mapped_column(db.JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ += ["ChannelEndpoint", "Incident", "NotificationChannel", "NotificationDelivery"]
