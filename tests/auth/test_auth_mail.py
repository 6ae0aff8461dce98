"""Mail: the console outbox, SMTP delivery to a real local server, and the audit log lines."""

from __future__ import annotations

import logging
import socketserver
import threading

import pytest

from monitorapp.mail import send_mail
from tests.auth.conftest import post_form


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough of SMTP (RFC 5321) for smtplib to deliver one message."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 test.local ready")
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250 test.local")
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                self.server.envelope.append(command)
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data.decode())
                self.server.messages.append("".join(lines))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    server.messages, server.envelope = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_backend_delivers_to_the_mail_server(make_app, app, smtp_server, outbox):
    smtp_app = make_app(
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.server_address[1],
        MAIL_USE_TLS=False,
        MAIL_FROM="monitorapp <alerts@monitor.example>",
    )
    with smtp_app.test_request_context():
        send_mail("dora@example.com", "verify_email", link="https://monitor.example/verify/abc", hours=24)
    assert outbox == []  # the SMTP backend does not fill the console outbox
    (message,) = smtp_server.messages
    assert "Subject: Verify your email address for monitorapp" in message
    assert "https://monitor.example/verify/abc" in message
    envelope = [command.upper() for command in smtp_server.envelope]
    assert "MAIL FROM:<ALERTS@MONITOR.EXAMPLE>" in envelope
    assert "RCPT TO:<DORA@EXAMPLE.COM>" in envelope


def test_an_unreachable_mail_server_does_not_break_sign_up(make_app, app, outbox):
    from tests.auth.conftest import RequestIsolatedClient
    from tests.conftest import free_port

    smtp_app = make_app(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_USE_TLS=False)
    smtp_app.test_client_class = RequestIsolatedClient
    client = smtp_app.test_client()
    data = {"email": "dora@example.com", "password": "a fine long passphrase", "team_name": "T"}
    assert post_form(client, "/register", data).status_code == 303


def test_every_account_event_is_a_monitors_audit_line(client, alice, caplog):
    caplog.set_level(logging.INFO, logger="monitors.audit")
    post_form(client, "/login", {"email": alice.email, "password": "not the right one"}, page="/login")
    post_form(client, "/login", {"email": "ghost@example.com", "password": "not the right one"}, page="/login")
    lines = [(record.getMessage(), record.event) for record in caplog.records if record.name == "monitors.audit"]
    assert [message for message, _ in lines] == ["login.failed", "login.failed"]
    assert lines[0][1]["tenant_id"] == str(alice.team_id)
    assert lines[1][1]["tenant_id"] is None and lines[1][1]["target"] == "ghost@example.com"
    assert all("not the right one" not in str(event) for _, event in lines)
