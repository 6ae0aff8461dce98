"""The built-in kinds: email, Apprise (Slack, Discord, Teams, ntfy, …) and a JSON webhook.

Targets whose host the user chooses (a webhook, Apprise's json:// or a
self-hosted ntfy) pass the outbound-request policy when the channel is saved
and again before every send, like a monitored URL. The webhook connects to
the address it checked; Apprise looks the host up again itself, which leaves
a DNS-rebinding window that the send-time check narrows but cannot close
(see the README (Alerts)). Apprise sends one URL in the calling thread, so the
context variable that hides the target from log lines reaches its logging.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import apprise
import certifi
import requests
from flask import current_app
from sqlalchemy import select

from monitorapp.extensions import db
from monitorapp.logging import redact_text
from monitorapp.models import Membership, NotificationChannel, User
from monitorapp.monitoring.policy import BlockedAddress, ResolutionFailed, resolve_allowed
from monitorapp.monitoring.probe import PinnedAdapter
from monitorapp.monitoring.urls import UrlError, parse_url
from monitorapp.notify.base import Notification, Transport, TransportError, register
from monitorapp.notify.secrets import SecretUnreadable, decrypt

# The pieces of the target in use right now (tokens, path segments). Apprise logs
# the URLs it loads and sends to, and urllib3 logs request paths at DEBUG; a
# webhook's or Slack's path is its secret, so both loggers blank these pieces.
_secret_parts: ContextVar[tuple[str, ...]] = ContextVar("notify_secret_parts", default=())


class _HideTargets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        parts = _secret_parts.get()
        if parts:
            message = record.getMessage()
            for part in parts:
                message = message.replace(part, "[redacted]")
            record.msg, record.args = message, None
        return True


logging.getLogger("apprise").addFilter(_HideTargets())
logging.getLogger("urllib3.connectionpool").addFilter(_HideTargets())


@contextmanager
def _hiding(target: str) -> Iterator[None]:
    """Keep every longer piece of `target` out of log lines written while sending to it."""
    parts = tuple(sorted({part for part in re.split(r"[/:@?&=#]+", target) if len(part) >= 6}, key=len, reverse=True))
    token = _secret_parts.set(parts)
    try:
        yield
    finally:
        _secret_parts.reset(token)

# Apprise services that always talk to the provider's own public host; any other
# scheme (json://, form://, gotify://, a self-hosted ntfy, …) names a host the
# user chose, and that host must pass the outbound policy.
HOSTED_SCHEMES = frozenset(
    {
        "slack", "discord", "msteams", "tgram", "pover", "pbul", "join", "ifttt", "opsgenie",
        "pagerduty", "twilio", "sns", "mailgun", "sendgrid", "spush", "line", "pushed", "zulip",
    }
)
# Apprise modes that mean "the public service" for schemes that can also be self-hosted.
HOSTED_MODES = frozenset({"cloud", "t2bot"})


def check_outbound_host(host: str, port: int, *, sending: bool = False) -> list[str]:
    """The host's addresses if the outbound policy allows them.

    When saving, a blocked host raises ValueError (a message for the form) and a
    name that does not resolve yet is accepted: it is checked again before every
    send. When sending, both raise TransportError.
    """
    allowed = current_app.config.get("ALLOWED_PRIVATE_NETWORKS") or ()
    try:
        return resolve_allowed(host, port, allowed)
    except BlockedAddress:
        message = "The host is a private or reserved address; notifications may only reach public ones."
        if sending:
            raise TransportError(message, permanent=True) from None
        raise ValueError(message) from None
    except ResolutionFailed:
        if sending:
            raise TransportError("The host name could not be resolved.") from None
        return []


def _timeout() -> float:
    return float(current_app.config["NOTIFY_TIMEOUT_SECONDS"])


def _target(channel: NotificationChannel) -> str:
    try:
        return decrypt(channel.target_encrypted or "")
    except SecretUnreadable as exc:
        raise TransportError(f"{exc}; enter the target again", permanent=True) from None


@register
class EmailTransport(Transport):
    """Mail to chosen members of the team, through the app's mail settings."""

    kind = "email"
    label = "Email"
    has_target = False

    def notify(self, channel: NotificationChannel, notification: Notification) -> None:
        from monitorapp import mail

        recipients = self.recipients(channel)
        if not recipients:
            raise TransportError("none of the channel's recipients is still in the team", permanent=True)
        for address in recipients:
            if current_app.config.get("MAIL_BACKEND") != "smtp":
                mail.send_mail(address, "alert", notification=notification)
                continue
            # mail.send_mail swallows SMTP errors (right for sign-up mails); alerts must retry.
            message = mail.build_message(address, "alert", notification=notification)
            try:
                mail._send_smtp(message)
            except smtplib.SMTPRecipientsRefused:
                raise TransportError(f"the mail server refused the recipient {address}", permanent=True) from None
            except smtplib.SMTPAuthenticationError:
                raise TransportError("the mail server refused the app's credentials", permanent=True) from None
            except (smtplib.SMTPException, OSError) as exc:
                raise TransportError(f"mail not sent: {type(exc).__name__}") from None

    @staticmethod
    def recipients(channel: NotificationChannel) -> list[str]:
        """Addresses of the chosen users who are still members of the channel's team."""
        wanted = {str(user_id) for user_id in channel.email_recipients or []}
        rows = db.session.execute(
            select(User.id, User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == channel.tenant_id)
            .order_by(User.email)
            .execution_options(system_scope=True)
        ).all()
        return [row.email for row in rows if str(row.id) in wanted]


@register
class AppriseTransport(Transport):
    """Any service Apprise supports, through one Apprise URL."""

    kind = "apprise"
    label = "Apprise (Slack, Discord, Teams, Telegram, ntfy, …)"

    def validate_target(self, target: str) -> str:
        target = target.strip()
        with _hiding(target):
            plugin = apprise.Apprise.instantiate(target, suppress_exceptions=True) if target else None
        if not plugin:
            raise ValueError("This is not an Apprise URL Apprise understands; see the Apprise wiki for the format.")
        self.check_host(plugin)
        return target

    @staticmethod
    def check_host(plugin, *, sending: bool = False) -> None:
        """Check the host of a user-chosen target against the outbound policy."""
        if plugin.secure_protocol in HOSTED_SCHEMES or plugin.protocol in HOSTED_SCHEMES:
            return
        if getattr(plugin, "mode", None) in HOSTED_MODES:
            return
        host = getattr(plugin, "host", None)
        if not host:
            return
        port = plugin.port or (443 if getattr(plugin, "secure", False) else 80)
        check_outbound_host(host, int(port), sending=sending)

    def notify(self, channel: NotificationChannel, notification: Notification) -> None:
        target = _target(channel)
        with _hiding(target):
            plugin = apprise.Apprise.instantiate(target, suppress_exceptions=True)
        if not plugin:
            raise TransportError("the Apprise URL is not valid", permanent=True)
        self.check_host(plugin, sending=True)
        sender = apprise.Apprise()
        sender.add(plugin)
        with _hiding(target), apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            sent = sender.notify(title=notification.title, body=notification.body)
        if not sent:
            detail = _last_line(captured.getvalue(), target)
            raise TransportError(f"the service did not accept the notification{': ' + detail if detail else ''}")


def _last_line(log_text: str, secret: str) -> str:
    """Apprise's last warning, shortened and without the target or anything secret-looking."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1].replace(secret, "[redacted]")
    return redact_text(line)[:160]


@register
class WebhookTransport(Transport):
    """A JSON POST of the notification to a URL the team chooses."""

    kind = "webhook"
    label = "Webhook (JSON POST)"

    def validate_target(self, target: str) -> str:
        try:
            parsed = parse_url(target)
        except UrlError as exc:
            raise ValueError(exc.message) from None
        check_outbound_host(parsed.host, parsed.port)
        return parsed.url

    def notify(self, channel: NotificationChannel, notification: Notification) -> None:
        target = _target(channel)
        try:
            parsed = parse_url(target)
        except UrlError:
            raise TransportError("the webhook URL is not valid", permanent=True) from None
        addresses = check_outbound_host(parsed.host, parsed.port, sending=True)
        body = json.dumps(notification.as_dict()).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": current_app.config["USER_AGENT"],
        }
        context = ssl.create_default_context(cafile=certifi.where())
        with _hiding(target), requests.Session() as session:
            session.trust_env = False  # never a proxy or .netrc from the environment
            # Connect to the address just checked, never to a second lookup's answer.
            session.mount(f"{parsed.scheme}://", PinnedAdapter(addresses[0], parsed.host, context))
            try:
                response = session.post(
                    parsed.url, data=body, headers=headers, timeout=_timeout(), allow_redirects=False
                )
                response.close()
            except requests.RequestException as exc:
                raise TransportError(f"the webhook could not be reached: {type(exc).__name__}") from None
        if 200 <= response.status_code < 300:
            return
        # A 4xx other than "too many" or "timeout" will not change by trying again.
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429)
        raise TransportError(f"the webhook answered HTTP {response.status_code}", permanent=permanent)
