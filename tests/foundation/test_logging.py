"""Log lines carry no secrets, whatever logs them."""

from __future__ import annotations

import io
import json
import logging

import pytest

from monitorapp.logging import AUDIT, CHECKS, PERFORMANCE, JsonFormatter, RedactingFilter, TextFormatter, log_event


@pytest.fixture
def captured():
    """A handler like the app's root handler (formatter + redacting filter), on a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_it_redacts_password_fields(captured):
    logger, stream = captured
    logger.info("form posted: email=a@b.c password=hunter2hunter2 remember=1")
    message = lines(stream)[0]["message"]
    assert "hunter2hunter2" not in message
    assert "email=a@b.c" in message


def test_it_redacts_password_keys_in_structured_fields(captured):
    logger, stream = captured
    log_event(logger, "signup", email="a@b.c", password="s3cret-value", new_password="other-s3cret")
    line = lines(stream)[0]
    assert line["password"] == "[redacted]" and line["new_password"] == "[redacted]"
    assert line["email"] == "a@b.c"


def test_it_redacts_api_tokens(captured):
    logger, stream = captured
    log_event(logger, "token used", token="mon_abcdef123456", detail={"api_key": "k-123"})
    line = lines(stream)[0]
    assert "mon_abcdef123456" not in json.dumps(line) and "k-123" not in json.dumps(line)


def test_it_redacts_authorization_and_cookie_headers(captured):
    logger, stream = captured
    logger.info("headers: Authorization: Bearer mon_zzzzzzzzzzzz")
    logger.info("Cookie: session=eyJhbGciOi.abc; remember_token=xyz")
    text = stream.getvalue()
    assert "mon_zzzzzzzzzzzz" not in text
    assert "eyJhbGciOi" not in text and "xyz" not in text


def test_it_redacts_bearer_values_anywhere(captured):
    logger, stream = captured
    logger.info("retrying with bearer abc.def.ghi")
    assert "abc.def.ghi" not in stream.getvalue()


def test_it_redacts_credentials_in_urls(captured):
    logger, stream = captured
    logger.info("checking https://admin:pa55word@example.com/status")
    message = lines(stream)[0]["message"]
    assert "pa55word" not in message and "admin" not in message
    assert "example.com/status" in message


def test_it_redacts_sensitive_query_parameters(captured):
    logger, stream = captured
    logger.info(
        "fetch https://example.com/hook?token=t0k&api_key=k3y&secret=s3c&password=p4s&signature=s1g&page=2"
    )
    message = lines(stream)[0]["message"]
    for secret in ("t0k", "k3y", "s3c", "p4s", "s1g"):
        assert secret not in message
    assert "page=2" in message


def test_it_redacts_secrets_in_tracebacks(captured):
    logger, stream = captured
    try:
        raise ValueError("could not connect to redis://:hunter2@redis:6379/0")
    except ValueError:
        logger.exception("boom")
    assert "hunter2" not in stream.getvalue()


def test_it_redacts_printf_arguments(captured):
    logger, stream = captured
    logger.info("login for %s with password=%s", "a@b.c", "letmein123")
    assert "letmein123" not in stream.getvalue()


def test_text_format_is_readable_and_redacted():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.text")
    logger.addHandler(handler)
    try:
        log_event(logger, "check done", level=logging.WARNING, url="https://u:p@x.test/?key=1", status="down")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "WARNING" in text and "check done" in text and "status=down" in text
    assert "u:p@" not in text


def test_the_app_loggers_exist_under_monitors():
    assert (AUDIT.name, PERFORMANCE.name, CHECKS.name) == ("monitors.audit", "monitors.performance", "monitors.checks")


def test_production_logs_json_lines_on_stdout(make_app, capsys):
    app = make_app(LOG_FORMAT="json")
    from monitorapp.logging import configure_logging

    configure_logging("json", "INFO")
    try:
        with app.app_context():
            log_event(AUDIT, "login", user="alice@example.com", password="nope-nope")
        out = capsys.readouterr().out.strip().splitlines()[-1]
        line = json.loads(out)
        assert line["logger"] == "monitors.audit" and line["message"] == "login"
        assert line["password"] == "[redacted]"
    finally:
        configure_logging("text", "INFO")
