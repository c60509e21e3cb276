"""VIGIE_LOG_FORMAT=json: one JSON object per line, with extra fields, still redacted."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime

import pytest

import services
from vigie.logs import setup_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_time_level_logger_message_and_extras_redacted(capsys, restore_logging):
    setup_logging(log_format="json")
    log = logging.getLogger("vigie.test")
    log.info("sent to %s for meter %s", "marie@example.org", "0012ab34",
             extra={"meter_id": "0012ab34", "channel": "mailtos://vigie:s3cr3t@smtp.example.org", "attempt": 2,
                    "phones": ["+33 6 12 34 56 78"], "ok": True, "ratio": 0.5, "missing": None})
    try:
        raise ValueError("bad address jean@example.org")
    except ValueError:
        log.exception("delivery failed")
    logging.getLogger("uvicorn.error").warning("ignored colour", extra={"color_message": "to marie@example.org"})

    first, second, third = lines(capsys.readouterr().err)
    assert first["level"] == "INFO" and first["logger"] == "vigie.test"
    assert first["message"] == "sent to <email> for meter 0012ab34"
    assert first["time"].endswith("Z") and datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert first["meter_id"] == "0012ab34" and first["attempt"] == 2 and first["ok"] is True
    assert first["ratio"] == 0.5 and first["missing"] is None
    assert first["channel"] == "mailtos://***@smtp.example.org" and first["phones"] == ["<phone>"]
    assert second["level"] == "ERROR" and "ValueError: bad address <email>" in second["exception"]
    assert "color_message" not in third
    assert "example.org" not in json.dumps([first, second, third]).replace("smtp.example.org", "")


def test_text_stays_the_default_and_an_unknown_format_is_refused(capsys, restore_logging):
    setup_logging()
    logging.getLogger("vigie.test").warning("plain %s", "line")
    err = capsys.readouterr().err
    assert err.rstrip().endswith("WARNING vigie.test: plain line") and not err.startswith("{")
    with pytest.raises(ValueError, match="VIGIE_LOG_FORMAT='xml': expected text or json"):
        setup_logging(log_format="xml")


def test_a_command_logs_json_when_configured(tmp_path):
    """A real command's log line (InfluxDB down at start) as JSON, its URL credentials masked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    port = services.free_port()
    env.update(VIGIE_LOG_FORMAT="json", VIGIE_DATABASE_URL=f"sqlite:///{tmp_path / 'v.db'}",
               VIGIE_INFLUX_URL=f"http://vigie:s3cr3t@127.0.0.1:{port}", VIGIE_DATA_DIR=str(tmp_path / "var"))
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "leaks", "--day", "2026-01-01"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    [warning] = [r for r in logged if r["logger"] == "vigie.context"]
    assert warning["level"] == "WARNING" and "InfluxDB unavailable at start" in warning["message"]
    assert "s3cr3t" not in done.stderr and f"http://***@127.0.0.1:{port}" in done.stderr
