"""Outgoing mail: SMTP in production, the log and an in-process outbox elsewhere.

`send_mail()` renders a plain-text template from `templates/mail/`. With
`MAIL_BACKEND=console` (development and tests) the message is logged and
appended to `outbox`, which tests read; with `MAIL_BACKEND=smtp` it goes to
`MAIL_SERVER` using the MAIL_* settings, during the request, or from a worker
when `send_from_worker()` hands it over.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, render_template
from redis import RedisError

from monitorapp.queues import NOTIFY_QUEUE, get_queue

log = logging.getLogger("monitorapp.mail")

# Messages "sent" by the console backend in this process, oldest first.
outbox: list[EmailMessage] = []


def build_message(to: str, template: str, **context) -> EmailMessage:
    """Render `templates/mail/<template>.txt`; its first line is `Subject: …`."""
    text = render_template(f"mail/{template}.txt", **context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"mail template {template} must start with a Subject: line")
    message = EmailMessage()
    message["Subject"] = first.removeprefix("Subject:").strip()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Message-ID"] = make_msgid(domain="monitorapp")
    message.set_content(body.lstrip("\n"))
    return message


def send_mail(to: str, template: str, **context) -> EmailMessage:
    """Render and send one mail to `to`."""
    message = build_message(to, template, **context)
    deliver(message)
    return message


def send_from_worker(message: EmailMessage, decoy: bool = False) -> None:
    """Leave the SMTP conversation for `message` to a worker.

    For a mail only some answers send: the reset link goes only to addresses
    with an account, and an SMTP conversation takes long enough to show in how
    long the answer takes. The other answers queue a `decoy`, made, serialised
    and queued like a real mail, that the worker drops: the answer takes as
    long either way. The console backend sends at once (developers and tests
    read the outbox), and so does SMTP if Redis cannot take the job.
    """
    if current_app.config.get("MAIL_BACKEND", "console") != "smtp":
        if not decoy:
            deliver(message)
        return
    raw = message.as_string()
    try:
        get_queue(NOTIFY_QUEUE).enqueue(deliver_queued_mail, None if decoy else raw, result_ttl=0)
    except (RedisError, OSError) as exc:
        log.warning("mail not queued (%s); sending it now", type(exc).__name__)
        if not decoy:
            deliver(message)


def deliver_queued_mail(raw: str | None) -> None:
    """Send a mail that `send_from_worker` queued (None: a decoy, nothing to send)."""
    if raw is not None:
        deliver(message_from_string(raw, policy=policy.default))


def deliver(message: EmailMessage) -> None:
    if current_app.config.get("MAIL_BACKEND", "console") == "smtp":
        try:
            _send_smtp(message)
        except (smtplib.SMTPException, OSError):
            # A mail server hiccup must not fail the sign-up or reset that sent it.
            log.exception("mail to %s could not be sent: %s", message["To"], message["Subject"])
    else:
        outbox.append(message)
        # The body holds one-time links; the console backend exists so a
        # developer can click them, so it logs them (never in production).
        log.info("mail to %s: %s\n%s", message["To"], message["Subject"], message.get_content())


def _send_smtp(message: EmailMessage) -> None:
    config = current_app.config
    host, port = config["MAIL_SERVER"], config["MAIL_PORT"]
    context = ssl.create_default_context()
    if config.get("MAIL_USE_SSL"):
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=10, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=10)
    with smtp:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            smtp.starttls(context=context)
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        smtp.send_message(message)
    log.info("mail sent to %s: %s", message["To"], message["Subject"])
