"""Logging: JSON lines in production, readable lines in development, no secrets.

The `monitors.*` loggers carry the app's own events:
`monitors.audit` (who did what), `monitors.performance` (durations, counts)
and `monitors.checks` (one line per check). Structured fields go in
`extra={"event": {...}}`.

`RedactingFilter` sits on the root handler, so every line — ours, Flask's,
Werkzeug's, RQ's — passes through it before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

AUDIT = logging.getLogger("monitors.audit")
PERFORMANCE = logging.getLogger("monitors.performance")
CHECKS = logging.getLogger("monitors.checks")

REDACTED = "[redacted]"
_SENSITIVE_NAME = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|^key$|_key$|signature|^sig$|authorization|cookie|session|csrf|credential",
    re.IGNORECASE,
)
# key=value or "key": "value" pairs whose key looks sensitive.
_PAIR = re.compile(
    r"""(?P<key>["']?[\w-]*(?:pass(?:word|wd)?|secret|token|api[-_]?key|signature|csrf)[\w-]*["']?)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<quote>["']?)(?P<value>[^"'\s&,;}]+)""",
    re.IGNORECASE,
)
_HEADER = re.compile(
    r"(?P<name>\b(?:authorization|proxy-authorization|cookie|set-cookie)\b\s*[:=]\s*)(?P<value>[^\r\n]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Drop credentials and sensitive query values from a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, REDACTED if _SENSITIVE_NAME.search(key) else value) for key, value in pairs],
            safe="[]",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    text = _HEADER.sub(lambda match: match.group("name") + REDACTED, text)
    text = _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", text)
    return _PAIR.sub(lambda match: f"{match.group('key')}{match.group('sep')}{match.group('quote')}{REDACTED}", text)


def redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and _SENSITIVE_NAME.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrite the record so that no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            record.event = redact_value(event)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            line.update(event)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        event = getattr(record, "event", None)
        if isinstance(event, dict) and event:
            text += " " + " ".join(f"{key}={value}" for key, value in event.items())
        return text


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Install one stdout handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_monitorapp", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._monitorapp = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("monitors", "monitors.audit", "monitors.performance", "monitors.checks"):
        logging.getLogger(name).setLevel(level)
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; the fields become JSON keys."""
    logger.log(level, message, extra={"event": fields})
