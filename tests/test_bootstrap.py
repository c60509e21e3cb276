"""``deploy/start-services.sh`` run from two checkouts of the repository on one machine: the second
reuses the machine's broker and its service and simulator credentials, so the first checkout's
``.env`` keeps working; a renewal is asked for explicitly. Real Mosquitto, started by the script in
a temporary state directory on a free port (``VIGIE_SERVICES_DIR``, ``VIGIE_MQTT_PORT``), with a
private influxd reused through ``VIGIE_INFLUXDB_PORT``; stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import services

ROOT = Path(__file__).resolve().parents[1]
SERVICE_KEYS = ("VIGIE_MQTT_USERNAME", "VIGIE_MQTT_PASSWORD", "VIGIE_SIMULATOR_MQTT_USERNAME",
                "VIGIE_SIMULATOR_MQTT_PASSWORD")


@pytest.fixture
def machine(tmp_path, influxd):
    """Run the script of a checkout (a copy of ``deploy/``) against one temporary machine state."""
    state, port = tmp_path / "state", services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", VIGIE_SERVICES_DIR=str(state),
               VIGIE_MQTT_PORT=str(port), VIGIE_INFLUXDB_PORT=str(influxd.port))

    def start(checkout: str, **extra: str) -> subprocess.CompletedProcess:
        root = tmp_path / checkout
        if not root.exists():
            shutil.copytree(ROOT / "deploy", root / "deploy")
        return subprocess.run(["bash", str(root / "deploy/start-services.sh")], env={**env, **extra}, cwd=root,
                              capture_output=True, text=True, timeout=120)

    yield start, port, tmp_path
    pid_file = state / "mosquitto/mosquitto.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def connack(port: int, username: str, password: str) -> int:
    """CONNACK reason code for these credentials (0: accepted)."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"check-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(username, password)
    codes: list[int] = []
    c.on_connect = lambda c_, u, f, rc, p: codes.append(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return codes[0]


def works(port: int, env: dict[str, str]) -> bool:
    """The service account receives what the simulator account publishes, with these credentials."""
    if (connack(port, env["VIGIE_MQTT_USERNAME"], env["VIGIE_MQTT_PASSWORD"])
            or connack(port, env["VIGIE_SIMULATOR_MQTT_USERNAME"], env["VIGIE_SIMULATOR_MQTT_PASSWORD"])):
        return False
    sub = services.Subscriber(port, env["VIGIE_MQTT_USERNAME"], env["VIGIE_MQTT_PASSWORD"], "wmbusmeters/#")
    try:
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{uuid.uuid4().hex[:8]}")
        pub.username_pw_set(env["VIGIE_SIMULATOR_MQTT_USERNAME"], env["VIGIE_SIMULATOR_MQTT_PASSWORD"])
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        payload = uuid.uuid4().hex.encode()
        pub.publish("wmbusmeters/check", payload, qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        return ("wmbusmeters/check", payload) in sub.wait_for(1, timeout=5)
    finally:
        sub.close()


def test_a_second_checkout_reuses_the_machines_credentials_and_renews_them_only_when_asked(machine):
    start, port, tmp = machine
    first = start("x1")
    assert first.returncode == 0, first.stderr
    env1 = dotenv(tmp / "x1/.env")
    assert works(port, env1)
    accounts = tmp / "state/mosquitto/auth/service-accounts.env"
    assert accounts.stat().st_mode & 0o777 == 0o600
    assert {k: dotenv(accounts)[k] for k in SERVICE_KEYS} == {k: env1[k] for k in SERVICE_KEYS}

    second = start("x2")  # a fresh clone: no .env
    assert second.returncode == 0, second.stderr
    env2 = dotenv(tmp / "x2/.env")
    assert {k: env2[k] for k in SERVICE_KEYS} == {k: env1[k] for k in SERVICE_KEYS}
    assert dotenv(tmp / "x1/.env") == env1 and works(port, env1)

    # Renewed only when asked; the other checkout gets the new passwords on its next run.
    assert start("x2", VIGIE_ROTATE_SERVICE_CREDENTIALS="1").returncode == 0
    renewed = dotenv(tmp / "x2/.env")
    assert renewed["VIGIE_MQTT_PASSWORD"] != env1["VIGIE_MQTT_PASSWORD"]
    assert works(port, renewed) and not works(port, env1)
    assert start("x1").returncode == 0
    # the same accounts; each checkout keeps a durable-session client id of its own
    x1 = dotenv(tmp / "x1/.env")
    assert x1.pop("VIGIE_MQTT_CLIENT_ID") != renewed.pop("VIGIE_MQTT_CLIENT_ID")
    assert x1 == renewed

    # Another service user would replace the account the other checkouts use: refused.
    (tmp / "x2/.env").write_text((tmp / "x2/.env").read_text().replace("=vigie-ingest", "=other-ingest"))
    refused = start("x2")
    assert refused.returncode == 1 and "serves vigie-ingest" in refused.stderr
    assert works(port, renewed)
