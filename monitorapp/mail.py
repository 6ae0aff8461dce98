"""Outgoing mail: SMTP in production, the log and an in-process outbox elsewhere.

`send_mail()` renders a plain-text template from `templates/mail/`. With
`MAIL_BACKEND=console` (development and tests) the message is logged and
appended to `outbox`, which tests read; with `MAIL_BACKEND=smtp` it goes to
`MAIL_SERVER` using the MAIL_* settings.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, render_template

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
    backend = current_app.config.get("MAIL_BACKEND", "console")
    if backend == "smtp":
        try:
            _send_smtp(message)
        except (smtplib.SMTPException, OSError):
            # A mail server hiccup must not fail the sign-up or reset that sent it.
            log.exception("mail to %s could not be sent: %s", to, message["Subject"])
    else:
        outbox.append(message)
        # The body holds one-time links; the console backend exists so a
        # developer can click them, so it logs them (never in production).
        log.info("mail to %s: %s\n%s", to, message["Subject"], message.get_content())
    return message


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
