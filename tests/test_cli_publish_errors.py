"""The publishing commands (``vigie simulate water|home|heating``, ``vigie replay ou44``) refuse a
pace of 0 or less before simulating anything, and end a broker's refusal with one line naming the
user and topics, exit code 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import services
from vigie.cli import app


@pytest.mark.parametrize("command", [["simulate", "water"], ["simulate", "home"], ["simulate", "heating"],
                                     ["replay", "ou44", "/nonexistent"]], ids=" ".join)
@pytest.mark.parametrize("speed", ["0", "-5"])
def test_a_speed_of_zero_or_less_is_refused_up_front(command, speed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--speed", speed])
    assert result.exit_code == 2, result.output
    assert "--speed" in result.output and "expected > 0" in result.output
    assert "publishing" not in result.output and "Traceback" not in result.output


def test_a_refused_publish_is_one_line_and_exit_1(secured_mosquitto, tmp_path):
    broker, passwords = secured_mosquitto
    # The service account may only subscribe: every message it publishes is refused (MQTT 5 PUBACK).
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}", VIGIE_SIMULATOR_MQTT_USERNAME=services.SERVICE_USER,
               VIGIE_SIMULATOR_MQTT_PASSWORD=passwords[services.SERVICE_USER])
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "simulate", "heating", "--rooms", "1", "--days", "1",
                          "--no-load-registry"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and run.stdout == ""
    [line] = [ln for ln in run.stderr.splitlines() if ln.startswith("simulate heating: the broker refused")]
    assert f"user {services.SERVICE_USER} on zigbee2mqtt" in line and "`vigie broker credentials`" in line
    assert "ACL may predate these topics" in line
