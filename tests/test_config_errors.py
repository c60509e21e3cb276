"""Configuration errors name the setting, where it was set, what is wrong and the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vigie.config import Settings
from vigie.config_errors import explain


def problems(monkeypatch, tmp_path, **env: str):
    monkeypatch.chdir(tmp_path)   # no .env here
    for k in [k for k in os.environ if k.startswith("VIGIE_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises((ValueError, OSError)) as caught:
        Settings()
    return {p.setting: p for p in explain(caught.value)}


def test_each_bad_value_gets_its_setting_source_and_fix(monkeypatch, tmp_path):
    found = problems(monkeypatch, tmp_path, VIGIE_API_PORT="99999", VIGIE_LANGUAGE="de", VIGIE_NOTIFY_RESOLVED="maybe",
                     VIGIE_MQTT_URL="broker:1883", VIGIE_TIMEZONE="Paris", VIGIE_MIN_COVERAGE="2",
                     VIGIE_DATABASE_URL="vigie.db")
    assert set(found) == {"VIGIE_API_PORT", "VIGIE_LANGUAGE", "VIGIE_NOTIFY_RESOLVED", "VIGIE_MQTT_URL",
                          "VIGIE_TIMEZONE", "VIGIE_MIN_COVERAGE", "VIGIE_DATABASE_URL"}
    assert all(p.source == "environment" for p in found.values())
    assert found["VIGIE_API_PORT"].value == "99999"
    assert "a whole number at least 1, at most 65535" in found["VIGIE_API_PORT"].fix
    assert "one of fr, en" in found["VIGIE_LANGUAGE"].fix
    assert "true or false" in found["VIGIE_NOTIFY_RESOLVED"].fix
    assert "mqtt://host[:port] or mqtts://host[:port]" in found["VIGIE_MQTT_URL"].fix
    assert found["VIGIE_TIMEZONE"].problem == "not an IANA time zone (e.g. Europe/Paris)"
    assert "an IANA time zone" in found["VIGIE_TIMEZONE"].fix
    assert "a number above 0, at most 1" in found["VIGIE_MIN_COVERAGE"].fix
    assert "postgresql+psycopg://" in found["VIGIE_DATABASE_URL"].fix
    assert all("docs/configuration.md" in p.fix for p in found.values())


def test_a_heating_step_must_divide_the_hour(monkeypatch, tmp_path):
    # Accepted by its range (1..60) but not by the heating grid: refused at start, not at 06:30.
    [p] = problems(monkeypatch, tmp_path, VIGIE_HEATING_STEP_MIN="7").values()
    assert p.setting == "VIGIE_HEATING_STEP_MIN" and p.value == "7" and p.source == "environment"
    assert p.fix.startswith("set VIGIE_HEATING_STEP_MIN to a whole divisor of 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, "
                            "30, 60)")
    monkeypatch.setenv("VIGIE_HEATING_STEP_MIN", "20")
    assert Settings().heating_step_min == 20


def test_a_secret_is_never_shown(monkeypatch, tmp_path):
    from vigie.config_errors import SettingProblem, _from_pydantic

    fields = Settings.model_fields
    shown = _from_pydantic({"type": "string_type", "loc": ("mqtt_password",), "msg": "Input should be a valid string",
                            "input": "hunter2"}, fields)
    assert isinstance(shown, SettingProblem) and shown.value is None and "hunter2" not in str(shown)


def test_a_list_in_the_environment_must_be_json(monkeypatch, tmp_path):
    [p] = problems(monkeypatch, tmp_path, VIGIE_HOME_TOPICS="zigbee2mqtt/#=zigbee2mqtt").values()
    assert p.setting == "VIGIE_HOME_TOPICS" and "JSON arrays" in p.problem
    assert p.fix.startswith("VIGIE_HOME_TOPICS='[\"zigbee2mqtt/#=zigbee2mqtt\"]'")


def test_config_file_errors_name_the_key_in_the_file(monkeypatch, tmp_path):
    path = tmp_path / "vigie.yaml"
    path.write_text("api_port: 0\n")
    [p] = problems(monkeypatch, tmp_path, VIGIE_CONFIG=str(path)).values()
    assert p.source == f"VIGIE_CONFIG file {path} (key api_port)"
    assert p.fix.startswith(f"set api_port in {path} to a whole number")
    path.write_text("mqtt_urll: mqtt://broker\n")
    [p] = problems(monkeypatch, tmp_path, VIGIE_CONFIG=str(path)).values()
    assert "mqtt_urll (did you mean mqtt_url?)" in p.problem
    [p] = problems(monkeypatch, tmp_path, VIGIE_CONFIG=str(tmp_path / "missing.yaml")).values()
    assert p.setting == "VIGIE_CONFIG" and "No such file" in p.problem and "readable YAML" in p.fix


def test_a_command_prints_them_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_LEAK_CHECK_TIME="6h", VIGIE_INGEST_WORKERS="0")
    done = subprocess.run([sys.executable, "-m", "vigie.cli", "leaks", "--day", "2026-01-01"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("configuration error: VIGIE_LEAK_CHECK_TIME='6h' (set in environment): not of the expected form\n"
            "  fix: set VIGIE_LEAK_CHECK_TIME to HH:MM (24 h)") in done.stderr
    assert "configuration error: VIGIE_INGEST_WORKERS='0' (set in environment)" in done.stderr
    assert "fix: set VIGIE_INGEST_WORKERS to a whole number at least 1, at most 64" in done.stderr
