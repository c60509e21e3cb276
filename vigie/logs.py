"""Logging for every ``vigie`` command: one format on stderr, and a last line of defence that keeps
personal details and secrets out of the logs.

Vigie's own code logs only opaque ids (meters, households, persons, alerts) and Apprise schemes;
third-party libraries are less careful (Apprise names the e-mail recipient it sent to; an access log
prints the single-use token of an acknowledgement link). :class:`RedactingFilter` rewrites, in every
record that reaches the handler, whatever looks like:

- an e-mail address → ``<email>``;
- a telephone number in international (``+33 6 12 34 56 78``) or separated national form
  (``06 12 34 56 78``, ``06.12.34.56.78``) → ``<phone>``;
- credentials in a URL (``mailtos://user:pass@host``) → ``mailtos://***@host``;
- a Vigie API key or acknowledgement-link token → ``<secret>``.

Bare digit strings are left alone on purpose: meter ids and epoch times look like them.

Two formats (``VIGIE_LOG_FORMAT``): ``text``, one line per record, and ``json``, one JSON object
per line for a log collector (:class:`JsonFormatter`). Both see records after the filter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@", re.I), r"\1***@"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\d){6,13}\b"), "<phone>"),
    (re.compile(r"(?<![\w.])0\d(?:[ .-]\d{2}){4}\b"), "<phone>"),
    (re.compile(r"\bvigie_[A-Za-z0-9]+_[A-Za-z0-9_-]{16,}"), "<secret>"),
    (re.compile(r"(/ack/)[A-Za-z0-9_.=-]{16,}"), r"\1<secret>"),
)


def redact(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers, URL credentials and tokens masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks personal details and secrets in a record's final message (see the module docstring).
    The record's arguments are merged into its message first, so nothing escapes through them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# Attributes every LogRecord has; the others were given by ``extra=``. uvicorn's ``color_message``
# repeats the message with terminal colours (and unredacted arguments): never shown.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName",
                                                                             "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line::

        {"time": "2026-11-29T19:24:32.104Z", "level": "INFO", "logger": "vigie.jobs",
         "message": "leak check 2026-11-28: …", "meter_id": "0012ab34"}

    ``time`` is ISO 8601 UTC with milliseconds; ``level`` the level name; ``logger`` the logger's
    name; ``message`` the final message (arguments merged); then every field the call gave with
    ``extra={…}`` (strings redacted like messages, other JSON types as they are, anything else as its
    ``str``); ``exception`` the traceback text when there is one, ``stack`` for ``stack_info``."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc:
                doc[key] = _json_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


def _json_value(value):
    """An ``extra`` value for JSON: strings redacted; numbers, booleans, None as they are;
    lists, tuples and dicts item by item; anything else as its redacted ``str``."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return redact(str(value))


# Libraries whose INFO lines are noise for an operator.
_QUIET = ("httpx", "httpcore", "apscheduler", "urllib3", "apprise", "alembic")

#: ``VIGIE_LOG_FORMAT`` values.
LOG_FORMATS = ("text", "json")


def setup_logging(verbose: bool = False, log_format: str = "text") -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``) through :class:`RedactingFilter`, as text
    lines or, with ``log_format="json"``, JSON lines (:class:`JsonFormatter`); the HTTP server's own
    loggers (uvicorn) propagate here too when started with ``log_config=None``. ValueError for
    another ``log_format``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"VIGIE_LOG_FORMAT={log_format!r}: expected text or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
