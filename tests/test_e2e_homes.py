"""Assisted-living homes end to end on real Mosquitto (the shipped authentication and ACL), InfluxDB
and SMTP, through the ``vigie`` command line — issue 4's scenario: a resident falls in the bathroom,
the neighbour is e-mailed and does not answer, the daughter is e-mailed after the wait and
acknowledges through the API, the escalation stops and nobody else is told anything but "handled";
the same with the service stopped between the two levels (SIGTERM, and SIGKILL) and restarted.

History (once for the module): a registry of four simulated homes
(``simulators.home.write_home_registry``: level 1 the neighbour, level 2 family — here the
``daughter`` — plus a town-hall staff member as the last level) is loaded by a first ``vigie serve``,
which ingests ``vigie simulate home --homes 4 --days 9 --end now`` — eight days of history and
today up to now, the resident of ``home-0003`` fallen in the bathroom :data:`FALL_AGO` (45 min) ago —
published with the simulator's own credential. The issue's fall is at 10:00; here it starts at that
fixed offset before now, whatever the hour: the service ticks on the wall clock and ``vigie simulate
home`` simulates Paris days (it has no zone option that would let the test pick a zone where it is
10:45 now). 45 min is past the home's learned bathroom line (its floor, 30 min by day, 15 at night,
for this resident's short visits) and under the inactivity floor (1 h), so the fall raises one alert
(``long_bathroom``) for the whole test.

Scenarios (run side by side, each with its own ``vigie serve`` on a fresh database with that
registry, its own SMTP sink and API port, all reading the same history; home tick every
:data:`TICK_S` s; the fallen home's ``escalation: {wait_min: 0.4, reminder_min: 1}``): the first tick
learns every routine and raises the fall; level 1 (the neighbour) is called at once; level 2 (the
daughter) :data:`WAIT` later; she acknowledges with her caregiver key before staff would be due
(level 2 + the wait) and before anyone's reminder (:data:`REMINDER` after their call); then nothing
more but the neighbour's "handled" message, checked after the ticks that follow the last moment
staff or a reminder would have been due (the daughter's, a minute after her call) — the detection
tick goes on reporting the fall meanwhile. The SMTP sinks are checked whole: who got which message
about which alert, and how many. Restart scenarios stop the service as soon as level 1 is sent (its
notification recorded ``sent``: delivery is at-least-once, a kill before that may resend it) and
start it again ``WAIT − TICK`` after level 1, so that its first tick comes after level 2 fell due:
the restarted process takes level 2, once, late and anchored on its due time, and calls nobody twice.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

import services
from vigie.alerts.models import EscalationStep, HomeAlert, Notification
from vigie.simulators.home import HomeSimConfig, simulate_homes, write_home_registry

pytestmark = pytest.mark.e2e

VIGIE = [sys.executable, "-m", "vigie.cli"]
HOMES, DAYS, SEED, FALLEN = 4, 9, 3, 2   # FALLEN: position of the home whose resident falls
FALL_AGO = timedelta(minutes=45)
TICK_S = 10
# The fallen home's escalation policy. A wait of 24 s puts level 2 on the third tick after level 1
# whatever the ticks' jitter, and staff (level 2 + the wait) on the fifth, leaving ~20 s to acknowledge.
WAIT, REMINDER = timedelta(minutes=0.4), timedelta(minutes=1)
STAFF = {"id": "staff-0001", "name": "Agent d'astreinte", "email": "astreinte@mairie.example"}
SCENARIOS = {"no-restart": None, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Served:
    """``vigie serve`` as a subprocess with ``env``; its log in ``root/serve-<n>.log``."""

    def __init__(self, env: dict, root: Path, port: int) -> None:
        self.env, self.root, self.n = env, root, 0
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.proc = None

    def start(self, **extra: str) -> None:
        self.n += 1
        self.log = self.root / f"serve-{self.n}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([*VIGIE, "serve"], env={**self.env, **extra}, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.root)

        def ready():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return self.api.get("/ready").status_code == 200
            except httpx.HTTPError:
                return False

        services.wait_until(ready, 60, "vigie serve ready")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop with ``sig`` and wait; SIGTERM must end it cleanly (uvicorn re-raises the signal once
        shut down, so its status is that of the signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        log = self.log.read_text(errors="replace")
        assert self.proc.returncode in (0, -sig), log[-3000:]
        assert sig != signal.SIGTERM or "Application shutdown complete" in log, log[-3000:]


def _cli(env, root, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([*VIGIE, *args], env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _key(env, root, role: str, person: str) -> dict:
    key = _cli(env, root, "keys", "create", "--role", role, "--person", person).stdout.strip()
    return {"Authorization": f"Bearer {key}"}


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


def _write_registry(households: list[dict], path: Path) -> None:
    """The simulated homes' registry with the test's people and policy: the fallen home's level 2
    is the resident's daughter, it waits :data:`WAIT` between levels and reminds every
    :data:`REMINDER`; the commune has one staff member (the last level, always on duty)."""
    households = copy.deepcopy(households)
    fallen = households[FALLEN]
    next(c for c in fallen["caregivers"] if c["level"] == 2)["relation"] = "daughter"
    fallen["escalation"] = {"wait_min": WAIT.total_seconds() / 60, "reminder_min": REMINDER.total_seconds() / 60}
    path.write_text(yaml.safe_dump({"households": households, "staff": [STAFF]}, allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")


@dataclass
class History:
    """The ingested history every scenario reads: ``env`` (broker, store, zone, the registry file of
    :func:`_write_registry`; no database, API or SMTP), the ``households`` as the simulator wrote
    them, the fall's start, the module's directory (a folder per ``vigie serve``), and ``database``:
    the ingest's SQLite file (registry loaded, no alert yet) holding an API key of each person of
    ``keys`` (person id → auth header), which each scenario starts from."""

    env: dict
    households: list[dict]
    fall_at: datetime
    root: Path
    database: Path
    keys: dict[str, dict]

    @property
    def fallen(self) -> dict:
        return self.households[FALLEN]

    def carer(self, level: int, home: int = FALLEN) -> dict:
        return next(c for c in self.households[home]["caregivers"] if c["level"] == level)


@pytest.fixture(scope="module")
def history(secured_mosquitto, influxd, tmp_path_factory):
    broker, passwords = secured_mosquitto
    root = tmp_path_factory.mktemp("e2e-homes")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update({
        "VIGIE_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "VIGIE_MQTT_USERNAME": services.SERVICE_USER, "VIGIE_MQTT_PASSWORD": passwords[services.SERVICE_USER],
        "VIGIE_SIMULATOR_MQTT_USERNAME": services.SIMULATOR_USER,
        "VIGIE_SIMULATOR_MQTT_PASSWORD": passwords[services.SIMULATOR_USER],
        "VIGIE_INFLUX_URL": services.influx_url(influxd),
        "VIGIE_INFLUX_DATABASE": f"e2e_homes_{root.name.replace('-', '_')}",
        "VIGIE_TIMEZONE": "Europe/Paris",
        "VIGIE_REGISTRY_FILE": str(root / "homes.yaml"),
    })
    now = _utcnow()
    # Eight whole local days, then today until now (the simulator's days are Paris days).
    start = now.astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=DAYS - 1)
    fall_at = (now - FALL_AGO).replace(microsecond=0)
    # The registry: the same homes and sensor ids as the simulator's (they depend on the seed only).
    written = root / "simulated-homes.yaml"
    write_home_registry(simulate_homes(HomeSimConfig(homes=HOMES, days=1, seed=SEED)), written)
    households = yaml.safe_load(written.read_text())["households"]
    topics = [f"zigbee2mqtt/{h['id']}/bridge/state" for h in households] + [
        f"zigbee2mqtt/{s['friendly_name']}/availability" for h in households for s in h["sensors"]]
    _write_registry(households, root / "homes.yaml")
    ingest = root / "ingest"
    ingest.mkdir()
    # No home tick during the ingest (600 s): the scenarios' services learn from the whole history.
    port = services.free_port()
    served = Served({**env, "VIGIE_MQTT_CLIENT_ID": f"vigie-e2e-homes-ingest-{root.name}",
                     "VIGIE_DATABASE_URL": f"sqlite:///{ingest / 'vigie.db'}", "VIGIE_DATA_DIR": str(ingest / "var"),
                     "VIGIE_API_PORT": str(port), "VIGIE_HOME_TICK_S": "600"}, ingest, port)
    try:
        served.start()
        people = [("staff", STAFF["id"])] + [("caregiver", c["id"]) for c in (households[FALLEN]["caregivers"]
                                                                            + households[0]["caregivers"][:1])]
        with ThreadPoolExecutor(2) as pool:   # the keys are made while the history is published
            keys = {person: pool.submit(_key, served.env, ingest, role, person) for role, person in people}
            sim = _cli(served.env, ingest, "simulate", "home", "--homes", str(HOMES), "--days", str(DAYS),
                       "--seed", str(SEED), "--start", start.isoformat(), "--end", now.isoformat(),
                       "--anomaly", f"fall:{FALLEN}:{fall_at.isoformat()},180",
                       "--ground-truth", str(ingest / "truth.jsonl"), timeout=300)
            keys = {person: made.result() for person, made in keys.items()}
        published = json.loads(sim.stdout.strip().splitlines()[-1])["published"]
        truth = [json.loads(line) for line in (ingest / "truth.jsonl").read_text().splitlines()]
        assert [(t["home"], t["kind"]) for t in truth] == [(households[FALLEN]["id"], "fall")]

        def caught_up():
            h = served.api.get("/health").json()
            return h if h["ingest_received"] >= published and h["ingest_pending"] == 0 else False

        health = services.wait_until(caught_up, 120, "ingest to catch up", interval=1)
        assert health["dead_letters"] == 0
        served.stop()
        yield History(env, households, fall_at, root, ingest / "vigie.db", keys)
    finally:
        served.stop()
        _clear_retained(broker.port, services.SIMULATOR_USER, passwords[services.SIMULATOR_USER], topics)


class Rows:
    """What the scenario's service recorded about one home alert (read-only, beside the service)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def steps(self, alert_id: int) -> list[EscalationStep]:
        with Session(self.engine) as s:
            return list(s.scalars(select(EscalationStep).where(EscalationStep.home_alert_id == alert_id)
                                  .order_by(EscalationStep.step_no)))

    def notifications(self, alert_id: int) -> list[tuple[str, str, str, str]]:
        """(person, reason, step key, delivery status) of every notification, in order."""
        with Session(self.engine) as s:
            return [tuple(r) for r in s.execute(
                select(Notification.person_id, Notification.reason, Notification.step, Notification.status)
                .where(Notification.home_alert_id == alert_id).order_by(Notification.id))]

    def last_seen(self, alert_id: int) -> datetime:
        """When a detection tick last reported the alert's condition (each tick, while it holds)."""
        with Session(self.engine) as s:
            return s.get(HomeAlert, alert_id).last_seen_at


def _mails(sink) -> dict[str, list[tuple[str, int | None]]]:
    """Every message the sink got: recipient → [(what it says, alert number)] in arrival order. What:
    ``call: first`` / ``call: level N`` / ``call: staff`` (urgent), ``reminder``, ``handled by X``
    (X the acknowledger's relation as told), ``closed``; the French texts of ``alerts.messages``."""
    out: dict[str, list] = {}
    for rcpts, msg in list(sink.messages):
        subject, body = msg["Subject"], msg.get_body().get_content()
        number = re.search(r"n° (\d+)", body)
        if "Rappel" in subject:
            what = "reminder"
        elif subject.startswith("Pris en charge"):
            who = re.search(r"par votre contact « (.+?) »", body)
            what = f"handled by {who.group(1) if who else 'staff or caregiver'}"
        elif subject.startswith("Fin d'alerte"):
            what = "closed"
        elif not subject.startswith("Urgent"):
            what = f"other: {subject}"
        elif "première personne prévenue" in body:
            what = "call: first"
        elif level := re.search(r"contact de niveau (\d+)", body):
            what = f"call: level {level.group(1)}"
        elif "personnel d'astreinte" in body:
            what = "call: staff"
        else:
            what = f"other: {subject}"
        for rcpt in rcpts:
            out.setdefault(rcpt, []).append((what, int(number.group(1)) if number else None))
    return out


def _escalate(h: History, name: str, sink, stop: signal.Signals | None) -> None:
    """One scenario (module docstring) on its own service; raises AssertionError."""
    root = h.root / name
    root.mkdir()
    for part in h.database.parent.glob(h.database.name + "*"):   # the file and its WAL, if any
        shutil.copy(part, root / part.name.replace(h.database.name, "vigie.db"))
    db_url = f"sqlite:///{root / 'vigie.db'}"
    port = services.free_port()
    env = {**h.env, "VIGIE_MQTT_CLIENT_ID": f"vigie-e2e-homes-{name}-{h.root.name}", "VIGIE_DATABASE_URL": db_url,
           "VIGIE_DATA_DIR": str(root / "var"), "VIGIE_HOME_TICK_S": str(TICK_S), "VIGIE_API_PORT": str(port),
           "VIGIE_SMTP_URL": f"mailto://127.0.0.1:{sink.port}?from=vigie@commune.example"}
    neighbour, daughter = h.carer(1), h.carer(2)
    served = Served(env, root, port)
    rows = Rows(db_url)
    try:
        staff_key, neighbour_key, daughter_key = (h.keys[p] for p in (STAFF["id"], neighbour["id"], daughter["id"]))
        served.start()

        # 1. The first tick learns the routines, raises the fall and calls level 1: the neighbour.
        services.wait_until(lambda: _mails(sink).get(neighbour["email"]), 90, "the neighbour's e-mail")
        alerts = served.api.get("/home-alerts", headers=staff_key).json()
        assert [(a["household_id"], a["kind"], a["severity"], a["status"]) for a in alerts] == \
            [(h.fallen["id"], "long_bathroom", "high", "open")]
        alert = alerts[0]
        evidence, opened = alert["evidence"], datetime.fromisoformat(alert["opened_at"])
        # Learned from the history (not the defaults), and pointing at the fall: the last activity
        # is the resident entering the bathroom.
        assert evidence["limited_history"] is False and evidence["last_room"] == "bathroom"
        assert 0 <= (datetime.fromisoformat(evidence["last_activity"]) - h.fall_at).total_seconds() < 60
        assert _mails(sink) == {neighbour["email"]: [("call: first", alert["id"])]}
        assert [(s.level, s.round) for s in rows.steps(alert["id"])] == [(1, 0)]

        if stop is None:
            # A caregiver sees the alerts of the homes they look after, and only those.
            assert [a["id"] for a in served.api.get("/home-alerts", headers=neighbour_key).json()] == [alert["id"]]
            other_key = h.keys[h.carer(1, home=0)["id"]]
            assert served.api.get("/home-alerts", headers=other_key).json() == []
            assert served.api.get(f"/home-alerts/{alert['id']}", headers=other_key).status_code == 404
        else:
            services.wait_until(lambda: rows.notifications(alert["id"]) == [(neighbour["id"], "escalation", "s1", "sent")], 10,
                  "level 1's notification recorded sent")
            served.stop(stop)
            stopped = _utcnow()
            assert stopped < opened + WAIT, "level 2 was due before the service could be stopped"
            assert [(s.level, s.round) for s in rows.steps(alert["id"])] == [(1, 0)]
            # Back WAIT − TICK after level 1: its first tick (TICK_S after the start) comes after
            # level 2 fell due, with no process ticking at that moment.
            time.sleep(max(0.0, (opened + WAIT - timedelta(seconds=TICK_S) - _utcnow()).total_seconds()))
            restarted = _utcnow()
            served.start()

        # 2. Nobody answered: WAIT after level 1, level 2 — the daughter.
        services.wait_until(lambda: _mails(sink).get(daughter["email"]), WAIT.total_seconds() + 60, "the daughter's e-mail")
        # She acknowledges with her own key, before staff and any reminder are due (the test's premise).
        deadline = opened + min(2 * WAIT, REMINDER)
        assert _utcnow() < deadline, f"level 2 came too late to acknowledge before {deadline} (machine overloaded?)"
        steps = rows.steps(alert["id"])
        assert [(s.level, s.round, s.notified) for s in steps] == [(1, 0, 1), (2, 0, 1)]
        # The wait is anchored on level 1's due time, whatever the tick that took level 2.
        assert steps[1].due_at == steps[0].due_at + WAIT <= steps[1].done_at
        if stop is not None:
            assert steps[1].done_at > steps[1].due_at > stopped and steps[1].done_at > restarted
        acked = served.api.post(f"/home-alerts/{alert['id']}/ack", headers=daughter_key)
        assert acked.status_code == 200, acked.text
        acked = acked.json()
        assert (acked["status"], acked["acknowledged_by"], acked["acknowledged_as"], acked["escalation_steps"]) == \
            ("acknowledged", daughter["id"], "daughter", 2)
        assert datetime.fromisoformat(acked["acknowledged_at"]) < deadline
        seen = served.api.get(f"/home-alerts/{alert['id']}", headers=neighbour_key).json()
        assert (seen["status"], seen["acknowledged_as"]) == ("acknowledged", "daughter")

        # 3. The neighbour is told it is handled — by "the daughter", never by name.
        services.wait_until(lambda: len(_mails(sink)[neighbour["email"]]) > 1, 3 * TICK_S, "the neighbour's 'handled' message")
        handled = [m for rcpts, m in sink.messages if rcpts == [neighbour["email"]]][-1].get_body().get_content()
        assert daughter["name"] not in handled and daughter["email"] not in handled

        # 4. Then nothing: not staff (due at level 2 + WAIT), no reminder (REMINDER after each call),
        #    while the detection tick goes on reporting the fall, past the last of those moments.
        would_be = max(steps[1].due_at + WAIT, *(s.done_at + REMINDER for s in steps))
        services.wait_until(lambda: rows.last_seen(alert["id"]) > would_be, (would_be - _utcnow()).total_seconds() + 4 * TICK_S,
              "a tick after staff and the reminders would have been due")
        after = rows.last_seen(alert["id"])
        services.wait_until(lambda: rows.last_seen(alert["id"]) > after, 4 * TICK_S, "the tick after it (its delivery done)")
        assert served.proc.poll() is None
        n = alert["id"]
        assert _mails(sink) == {neighbour["email"]: [("call: first", n), ("handled by daughter", n)],
                                daughter["email"]: [("call: level 2", n)]}
        assert rows.notifications(alert["id"]) == [(neighbour["id"], "escalation", "s1", "sent"),
                                                   (daughter["id"], "escalation", "s2", "sent"),
                                                   (neighbour["id"], "handled", "handled", "sent")]
        assert len(rows.steps(alert["id"])) == 2
        assert [(a["id"], a["status"]) for a in served.api.get("/home-alerts", headers=staff_key).json()] == \
            [(alert["id"], "acknowledged")]
    finally:
        served.stop()
        rows.engine.dispose()


@pytest.fixture(scope="module")
def escalations(history, smtp_sinks) -> dict[str, Future]:
    """The scenarios, started together (each runs for two minutes or so, mostly waiting)."""
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        yield {name: pool.submit(_escalate, history, name.lower(), smtp_sinks(), stop)
               for name, stop in SCENARIOS.items()}


def test_nobody_answers_the_neighbour_the_daughter_acknowledges(escalations):
    escalations["no-restart"].result()


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_the_same_with_the_service_restarted_between_the_levels(escalations, stop):
    escalations[stop].result()


def test_no_personal_detail_in_the_logs(history, escalations):
    wait(escalations.values())
    logs = "".join(p.read_text(errors="replace") for p in sorted(history.root.glob("*/serve-*.log")))
    assert logs
    personal = {p[k] for h in history.households for p in h.get("residents", []) + h.get("caregivers", [])
                for k in ("name", "email") if p.get(k)} | {STAFF["name"], STAFF["email"]}
    assert not sorted(p for p in personal if p in logs)
