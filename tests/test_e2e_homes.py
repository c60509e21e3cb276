"""Assisted-living homes end to end on real Mosquitto (the shipped authentication and ACL), InfluxDB
and SMTP, through the ``vigie`` command line:

a registry of four simulated homes (``simulators.home.write_home_registry``: caregivers with
e-mail) is loaded; ``vigie serve`` ingests ``vigie simulate home --homes 4 --days 9 --end now`` —
eight days of history and today up to now, the resident of ``home-0003`` fallen in the bathroom
45 minutes ago — published by the simulator's own credential. The service is then restarted (as
after a deployment), so that its first home tick learns every routine from that history, as the
daily learning does; the tick (``VIGIE_HOME_TICK_S=10``) raises the fall, its level-1 caregiver
(the neighbour) is e-mailed, a staff key lists the alert, and a caregiver's key sees only the
homes they look after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

import services
from vigie.simulators.home import HomeSimConfig, simulate_homes, write_home_registry

pytestmark = pytest.mark.e2e

VIGIE = [sys.executable, "-m", "vigie.cli"]
HOMES, DAYS, SEED, FALLEN = 4, 9, 3, 2   # FALLEN: position of the home whose resident falls


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Served:
    """``vigie serve`` as a subprocess with ``env``; its log in ``tmp_path/serve-<n>.log``."""

    def __init__(self, env: dict, tmp_path, port: int) -> None:
        self.env, self.tmp_path, self.n = env, tmp_path, 0
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.proc = None

    def start(self, **extra: str) -> None:
        self.n += 1
        self.log = self.tmp_path / f"serve-{self.n}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([*VIGIE, "serve"], env={**self.env, **extra}, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.tmp_path)

        def ready():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return self.api.get("/ready").status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, 60, "vigie serve ready")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _cli(env, tmp_path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([*VIGIE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _key(env, tmp_path, role: str, person: str) -> str:
    return _cli(env, tmp_path, "keys", "create", "--role", role, "--person", person).stdout.strip()


def _clear_retained(port: int, user: str, password: str, topics: list[str]) -> None:
    """The simulator's availability messages are retained on the session's broker: clear them so
    that later tests' ingestors do not receive devices of a registry they do not have."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"clear-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for info in [c.publish(t, b"", qos=1, retain=True) for t in topics]:
            info.wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_fall_is_raised_and_the_neighbour_emailed(secured_mosquitto, influxd, smtp_server, tmp_path):
    broker, passwords = secured_mosquitto
    port = services.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update({
        "VIGIE_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "VIGIE_MQTT_CLIENT_ID": f"vigie-e2e-homes-{tmp_path.name}",
        "VIGIE_MQTT_USERNAME": services.SERVICE_USER, "VIGIE_MQTT_PASSWORD": passwords[services.SERVICE_USER],
        "VIGIE_SIMULATOR_MQTT_USERNAME": services.SIMULATOR_USER,
        "VIGIE_SIMULATOR_MQTT_PASSWORD": passwords[services.SIMULATOR_USER],
        "VIGIE_INFLUX_URL": services.influx_url(influxd),
        "VIGIE_INFLUX_DATABASE": f"e2e_homes_{tmp_path.name.replace('-', '_')}",
        "VIGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'vigie.db'}",
        "VIGIE_DATA_DIR": str(tmp_path / "var"),
        "VIGIE_SMTP_URL": f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example",
        "VIGIE_API_PORT": str(port),
        "VIGIE_TIMEZONE": "Europe/Paris",
    })
    now = datetime.now(timezone.utc)
    # Eight whole local days, then today until now (the simulator's days are Paris days).
    start = now.astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=DAYS - 1)
    fall_at = (now - timedelta(minutes=45)).replace(microsecond=0)
    # The registry: the same homes and sensor ids as the simulator's (they depend on the seed only).
    registry = tmp_path / "homes.yaml"
    write_home_registry(simulate_homes(HomeSimConfig(homes=HOMES, days=1, seed=SEED)), registry)
    _cli(env, tmp_path, "registry", "load", str(registry))
    households = yaml.safe_load(registry.read_text())["households"]
    fallen = households[FALLEN]
    topics = [f"zigbee2mqtt/{h['id']}/bridge/state" for h in households] + [
        f"zigbee2mqtt/{s['friendly_name']}/availability" for h in households for s in h["sensors"]]

    served = Served(env, tmp_path, port)
    try:
        # 1. The history is ingested by a first run (no home tick during it: the first one would
        #    learn from a partial history and keep that routine until the nightly learning).
        served.start(VIGIE_HOME_TICK_S="600")
        sim = _cli(env, tmp_path, "simulate", "home", "--homes", str(HOMES), "--days", str(DAYS), "--seed", str(SEED),
                   "--start", start.isoformat(), "--end", now.isoformat(),
                   "--anomaly", f"fall:{FALLEN}:{fall_at.isoformat()},180",
                   "--ground-truth", str(tmp_path / "truth.jsonl"), timeout=300)
        published = json.loads(sim.stdout.strip().splitlines()[-1])["published"]
        truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
        assert [(t["home"], t["kind"]) for t in truth] == [(fallen["id"], "fall")]

        def caught_up():
            h = served.api.get("/health").json()
            return h if h["ingest_received"] >= published and h["ingest_pending"] == 0 else False

        health = _wait(caught_up, 120, "ingest to catch up", interval=1)
        assert health["dead_letters"] == 0
        served.stop()

        # 2. Restarted: the first tick learns the routines and detects at once.
        served.start(VIGIE_HOME_TICK_S="10")
        neighbour = next(c for c in fallen["caregivers"] if c["level"] == 1)
        mails = _wait(lambda: smtp_server.to(neighbour["email"]), 90, "the neighbour's e-mail")
        assert mails[0]["Subject"]
        staff = {"Authorization": f"Bearer {_key(env, tmp_path, 'staff', 'p-staff')}"}
        alerts = served.api.get("/home-alerts", headers=staff).json()
        fall_alerts = [a for a in alerts if a["household_id"] == fallen["id"] and a["kind"] == "long_bathroom"]
        assert fall_alerts and fall_alerts[0]["severity"] == "high" and fall_alerts[0]["status"] == "open"
        evidence = fall_alerts[0]["evidence"]
        # Learned from the history (not the defaults), and pointing at the fall: the last activity
        # is the resident entering the bathroom.
        assert evidence["limited_history"] is False and evidence["last_room"] == "bathroom"
        assert 0 <= (datetime.fromisoformat(evidence["last_activity"]) - fall_at).total_seconds() < 60
        # Nobody else was written to: no caregiver of another home, not the fallen home's level 2 yet.
        recipients = {r for rcpts, _ in smtp_server.messages for r in rcpts}
        assert recipients == {neighbour["email"]}

        # A caregiver sees the alerts of the homes they look after, and only those.
        carer = {"Authorization": f"Bearer {_key(env, tmp_path, 'caregiver', neighbour['id'])}"}
        mine = served.api.get("/home-alerts", headers=carer).json()
        assert {a["household_id"] for a in mine} == {fallen["id"]}
        assert fall_alerts[0]["id"] in {a["id"] for a in mine}
        other = next(c for c in households[0]["caregivers"] if c["level"] == 1)
        theirs = {"Authorization": f"Bearer {_key(env, tmp_path, 'caregiver', other['id'])}"}
        assert all(a["household_id"] == households[0]["id"]
                   for a in served.api.get("/home-alerts", headers=theirs).json())
        assert served.api.get(f"/home-alerts/{fall_alerts[0]['id']}", headers=theirs).status_code == 404
        assert served.proc.poll() is None
    finally:
        served.stop()
        _clear_retained(broker.port, services.SIMULATOR_USER, passwords[services.SIMULATOR_USER], topics)
    logs = "".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("serve-*.log")))
    personal = {p[k] for h in households for p in h.get("residents", []) + h.get("caregivers", [])
                for k in ("name", "email") if p.get(k)}
    assert not sorted(p for p in personal if p in logs)
