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
"""

from __future__ import annotations

import logging
import re
import sys

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


# Libraries whose INFO lines are noise for an operator.
_QUIET = ("httpx", "httpcore", "apscheduler", "urllib3", "apprise", "alembic")


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``) through :class:`RedactingFilter`; the HTTP
    server's own loggers (uvicorn) propagate here too when started with ``log_config=None``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
