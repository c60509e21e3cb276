"""Logs never carry personal details or secrets, even when a library puts them there."""

import logging

import pytest

from vigie.logs import RedactingFilter, redact


@pytest.mark.parametrize("text, expected", [
    ("Sent Email to marie.exemple+eau@example.org", "Sent Email to <email>"),
    ("call +33 6 12 34 56 78 now", "call <phone> now"),
    ("call +33612345678", "call <phone>"),
    ("call 06 12 34 56 78 or 06.12.34.56.78", "call <phone> or <phone>"),
    ("mailtos://vigie:s3cr3t@smtp.example.org:587?from=a", "mailtos://***@smtp.example.org:587?from=a"),
    ("GET /ack/eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.abc_DEF-123 HTTP/1.1", "GET /ack/<secret> HTTP/1.1"),
    ("key vigie_k3y1d_0123456789abcdefABCDEF_-xyz", "key <secret>"),
])
def test_redact_masks_personal_details_and_secrets(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "meter 0012ab34 at 1795980323 index 123.456 m3",
    "2026-11-29 19:24:32 INFO vigie.ingest: 8000 readings/s, 12 dead letters",
    "household h-0001 person p-0001 alert 42",
])
def test_redact_leaves_opaque_ids_times_and_numbers(text):
    assert redact(text) == text


def test_filter_merges_arguments_and_masks_tracebacks(caplog):
    logger = logging.getLogger("apprise.test")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="apprise.test"):
            logger.info("Sent Email to %s", "marie@example.org")
            try:
                raise ValueError("bad address jean@example.org")
            except ValueError:
                logger.exception("delivery failed")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert "marie@example.org" not in text and "jean@example.org" not in text
    assert "Sent Email to <email>" in text and "bad address <email>" in text
