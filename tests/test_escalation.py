"""Escalation of home alerts (vigie.alerts.escalation) on real SQLite and PostgreSQL stores, with real
e-mail to the SMTP sink, the API, acknowledgement links, concurrent ticks and restarts in subprocesses.

One home, ``home-1`` of commune ``c1``: level 1 the neighbour, level 2 the daughter (quiet hours
22:00-07:00) and the son (available at weekends only), then staff: ``s-day`` on duty Monday to Friday
08:00-18:00 and ``s-call`` always. Waits 10 min, reminders every 15 min. Times are Paris local.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from clock import FakeClock
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigie.alerts.acklinks import AckLinks, AlertType, secret_key_for
from vigie.alerts.delivery import Deliverer, channel_urls
from vigie.alerts.escalation import AlertNotAcknowledgedError, Escalation, escalation_levels
from vigie.alerts.messages import evidence_event, render_home
from vigie.alerts.models import (AlertStatus, DeliveryStatus, EscalationStep, HomeAlert, Notification,
                                 NotificationReason)
from vigie.api.app import create_app
from vigie.audit import AuditEvent
from vigie.auth import Role, create_key
from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.records import HOME_EVENT_SEVERITY, HomeEvent, HomeEventKind
from vigie.registry import STAFF_LEVEL, Household, Person, RegistryError, load_registry_file
from vigie.store import InfluxStore
from vigie.timewindows import WindowError, parse_windows, within

PARIS = "Europe/Paris"
# Monday 2026-03-16 10:00 Paris (09:00 UTC): staff s-day is on duty.
MONDAY_10 = datetime(2026, 3, 16, 9, 0, tzinfo=timezone.utc)
# Monday 2026-03-16 23:00 Paris: the daughter's quiet hours, s-day off duty.
MONDAY_23 = datetime(2026, 3, 16, 22, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
NAMES = ("Nina", "Dora", "Sam", "Agent", "Jeanne")

REGISTRY = """
households:
  - id: home-1
    commune: c1
    address: "7 rue des Lilas"
    residents: [{id: p-res, name: Jeanne Exemple, email: jeanne@example.org}]
    caregivers:
      - {id: p-neigh, name: Nina Voisine, email: nina@example.org, relation: neighbour, level: 1, language: en}
      - {id: p-daughter, name: Dora Exemple, email: dora@example.org, relation: daughter, level: 2,
         quiet_hours: "22:00-07:00"}
      - {id: p-son, name: Sam Exemple, email: sam@example.org, relation: son, level: 2,
         availability: "sat,sun 00:00-24:00"}
      - {id: p-friend, name: Nora Amie, email: nora@example.org, relation: friend}
    escalation: {wait_min: 10, reminder_min: 15}
  - id: home-2
    commune: c2
    caregivers:
      - {id: p-other, name: Otto Autre, email: otto@example.org, relation: son, level: 1}
staff:
  - {id: s-day, name: Agent Jour, email: day@mairie.example, commune: c1, duty: "mon-fri 08:00-18:00"}
  - {id: s-call, name: Agent Astreinte, email: call@mairie.example, commune: c1}
"""
LEVELS = {"p-neigh": 1, "p-daughter": 2, "p-son": 2, "s-day": STAFF_LEVEL, "s-call": STAFF_LEVEL}


def event(kind: HomeEventKind = HomeEventKind.LONG_BATHROOM, start: datetime = MONDAY_10, home: str = "home-1",
          sensor: str | None = None) -> HomeEvent:
    """An event as the detectors raise it (evidence in seconds, a decline in motions/day)."""
    if kind == HomeEventKind.DECLINE:
        return HomeEvent(home, kind, start, start, HOME_EVENT_SEVERITY[kind], observed=40.0, normal=120.0,
                         threshold=70.0, unit="motions/day")
    return HomeEvent(home, kind, start, start, HOME_EVENT_SEVERITY[kind], last_activity=start - 20 * MIN,
                     last_room="bathroom", observed=1500.0, normal=600.0, threshold=1200.0, unit="s",
                     sensor_id=sensor)


class World:
    """The registry above on ``db_url``, an engine driven by a fake clock, delivery to the sink."""

    def __init__(self, tmp: Path, db_url: str, smtp=None) -> None:
        self.clock = FakeClock()
        self.clock.now = MONDAY_10
        self.settings = Settings(database_url=db_url, data_dir=tmp / "var", timezone=PARIS, language="fr",
                                 public_url="https://vigie.example",
                                 smtp_url=f"mailto://127.0.0.1:{smtp.port}?from=vigie@commune.example"
                                 if smtp else "mailto://127.0.0.1:9?from=vigie@commune.example")
        (tmp / "registry.yaml").write_text(REGISTRY, encoding="utf-8")
        self.engine = make_engine(db_url)
        self.sessions = make_sessionmaker(self.engine)
        with self.sessions() as s:
            load_registry_file(s, tmp / "registry.yaml")
        self.esc = Escalation(self.sessions, self.settings, clock=self.clock)
        self.smtp = smtp

    def open(self, *events: HomeEvent, evaluated=("home-1",)) -> list[int]:
        self.esc.apply_events(events, evaluated)
        with self.sessions() as s:
            return list(s.scalars(select(HomeAlert.id).order_by(HomeAlert.id)))

    def at(self, minutes: float) -> set[tuple[str, str]]:
        """Tick at ``minutes`` after the alert's start; returns the (person, step) queued by it."""
        before = self.queued()
        self.clock.now = self.t0 + timedelta(minutes=minutes)
        self.esc.tick()
        return set(self.queued()) - set(before)

    def queued(self, alert_id: int | None = None) -> list[tuple[str, str]]:
        with self.sessions() as s:
            q = select(Notification.person_id, Notification.step).where(Notification.home_alert_id.is_not(None))
            if alert_id is not None:
                q = q.where(Notification.home_alert_id == alert_id)
            return [tuple(r) for r in s.execute(q.order_by(Notification.id))]

    def deliver(self, now: datetime | None = None):
        """Send what is due at ``now`` (default: the fake clock; the API acts on the real one).
        Links are signed on the real clock, which the API checks them against."""
        return Deliverer(self.sessions, self.settings).deliver_due(now or self.clock.now)

    def alert(self, alert_id: int) -> HomeAlert:
        with self.sessions() as s:
            return s.get(HomeAlert, alert_id)

    t0 = MONDAY_10

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def world(tmp_path, db_url):
    w = World(tmp_path, db_url)
    yield w
    w.close()


@pytest.fixture
def mail_world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server)
    yield w
    w.close()


def mails_to(smtp, address: str) -> list[tuple[str, str]]:
    return [(m["subject"], m.get_body().get_content()) for m in smtp.to(address)]


# --- the chain ------------------------------------------------------------------------------------
def test_levels_waits_reminders_and_last_level_repeats(world):
    [alert_id] = world.open(event())
    assert world.at(0) == {("p-neigh", "s1")}                       # level 1 at once
    assert world.at(9) == set()
    assert world.at(10) == {("p-daughter", "s2")}                   # the son is weekends only
    assert world.at(15) == {("p-neigh", "r1")}                      # 15 min after their call
    assert world.at(20) == {("s-day", "s3"), ("s-call", "s3")}      # staff on duty, the last level
    assert world.at(25) == {("p-daughter", "r1")}
    assert world.at(30) == {("s-day", "s4"), ("s-call", "s4"), ("p-neigh", "r2")}   # the last level again
    assert world.at(39) == set()
    assert world.at(40) == {("s-day", "s5"), ("s-call", "s5"), ("p-daughter", "r2")}
    with world.sessions() as s:
        steps = [(st.step_no, st.level, st.round, st.due_at - world.t0, st.notified)
                 for st in s.scalars(select(EscalationStep).order_by(EscalationStep.step_no))]
    assert steps == [(1, 1, 0, 0 * MIN, 1), (2, 2, 0, 10 * MIN, 1), (3, STAFF_LEVEL, 0, 20 * MIN, 2),
                     (4, STAFF_LEVEL, 1, 30 * MIN, 2), (5, STAFF_LEVEL, 2, 40 * MIN, 2)]
    assert world.alert(alert_id).status == AlertStatus.OPEN
    # The same tick again changes nothing.
    assert world.at(40) == set()


def test_a_tick_after_an_outage_calls_every_missed_level_once(world):
    world.open(event())
    assert world.at(0) == {("p-neigh", "s1")}
    # Down from +1 to +47 min: levels 2 and staff are both overdue; the missed staff repeats collapse.
    got = world.at(47)
    assert got == {("p-daughter", "s2"), ("s-day", "s3"), ("s-call", "s3"), ("s-day", "s4"), ("s-call", "s4"),
                   ("p-neigh", "r1")}
    with world.sessions() as s:
        steps = [(st.level, st.round, st.due_at - world.t0)
                 for st in s.scalars(select(EscalationStep).order_by(EscalationStep.step_no))]
    assert steps == [(1, 0, 0 * MIN), (2, 0, 10 * MIN), (STAFF_LEVEL, 0, 20 * MIN), (STAFF_LEVEL, 1, 40 * MIN)]
    assert world.at(49) == set() and world.at(50) == {("s-day", "s5"), ("s-call", "s5")}


# --- preferences: quiet hours, availability, channels per severity --------------------------------
def test_quiet_hours_skip_low_severity_and_an_empty_level_passes_at_once(world):
    world.t0 = world.clock.now = MONDAY_23
    world.open(event(HomeEventKind.DECLINE, start=MONDAY_23))
    assert world.at(0) == {("p-neigh", "s1")}
    # Level 2: the daughter is in quiet hours, the son unavailable: nobody, so staff at once — and
    # only the one on call (s-day is off duty at 23:00).
    assert world.at(10) == {("s-call", "s3")}
    with world.sessions() as s:
        step2 = s.scalars(select(EscalationStep).where(EscalationStep.step_no == 2)).one()
        assert (step2.level, step2.notified) == (2, 0)
    assert world.at(19) == {("p-neigh", "r1")}
    assert world.at(20) == {("s-call", "s4")}   # the last level's repeats always wait


def test_quiet_hours_do_not_hold_back_a_possible_fall(world):
    world.t0 = world.clock.now = MONDAY_23
    world.open(event(HomeEventKind.LONG_BATHROOM, start=MONDAY_23))
    assert world.at(0) == {("p-neigh", "s1")}
    assert world.at(10) == {("p-daughter", "s2")}
    assert world.at(20) == {("s-call", "s3"), ("p-neigh", "r1")}   # reminders ignore quiet hours too


def test_availability_windows_and_staff_duty(world):
    saturday = MONDAY_10 - timedelta(days=2)
    world.t0 = world.clock.now = saturday
    world.open(event(start=saturday))
    world.at(0)
    assert world.at(10) == {("p-daughter", "s2"), ("p-son", "s2")}   # the son at the weekend
    assert world.at(20) == {("s-call", "s3"), ("p-neigh", "r1")}    # s-day: not on Saturdays


def test_notify_preferences_per_severity(world, tmp_path):
    (tmp_path / "prefs.yaml").write_text(
        "households:\n  - id: home-1\n    caregivers:\n"
        "      - {id: p-neigh, notify: {low: [], high: [email, 'ntfy://ntfy.example.org/nina']}}\n")
    with world.sessions() as s:
        load_registry_file(s, tmp_path / "prefs.yaml")
        nina = s.get(Person, "p-neigh")
        assert channel_urls(nina, world.settings.smtp_url, "low") == []
        high = channel_urls(nina, world.settings.smtp_url, "high")
        assert [u.split(":")[0] for u in high] == ["mailto", "ntfy"] and "to=nina@example.org" in high[0]
        assert len(channel_urls(nina, world.settings.smtp_url, "medium")) == 1   # unnamed: the default
    world.open(event(HomeEventKind.DECLINE))
    assert world.at(0) == {("p-daughter", "s2")}   # level 1 reaches nobody for a low alert: level 2 at once
    with world.sessions() as s:
        assert [(st.level, st.notified) for st in s.scalars(select(EscalationStep))] == [(1, 0), (2, 1)]


def test_sensor_silent_goes_to_staff_only_and_staff_only_see_it(world):
    world.open(event(HomeEventKind.SENSOR_SILENT, sensor="s-3f9a"))
    assert world.at(0) == {("s-day", "s1"), ("s-call", "s1")}
    with world.sessions() as s:
        levels = escalation_levels(s, s.get(Household, "home-1"), HomeEventKind.SENSOR_SILENT)
        assert [lv.number for lv in levels] == [STAFF_LEVEL]


# --- acknowledgement and resolution ------------------------------------------------------------
def _api(world: World):
    store = InfluxStore.from_settings(world.settings)
    ctx = AppContext(world.settings, store, world.engine, world.sessions)
    client = TestClient(create_app(ctx))
    with world.sessions() as s:
        tokens = {who: create_key(s, **kw).token for who, kw in {
            "daughter": dict(role=Role.CAREGIVER, person_id="p-daughter"),
            "other": dict(role=Role.CAREGIVER, person_id="p-other"),
            "resident": dict(role=Role.RESIDENT, person_id="p-res"),
            "staff": dict(role=Role.STAFF, person_id="s-day", commune="c1"),
            "staff_c2": dict(role=Role.STAFF, person_id="s-x", commune="c2"),
            "grafana": dict(role=Role.GRAFANA, commune="c1")}.items()}
    return client, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


def test_ack_via_api_stops_the_chain_and_tells_those_reached(mail_world):
    w = mail_world
    [alert_id] = w.open(event())
    w.at(0)
    w.deliver()
    w.at(10)
    w.deliver()
    [(subject, body)] = mails_to(w.smtp, "dora@example.org")
    assert subject.startswith("Urgent : Vigie — séjour prolongé dans la salle de bain") and "home-1" in subject
    assert "Dans la salle de bain depuis 25 min" in body and "niveau 2" in body
    assert "https://vigie.example/ack/" in body and not any(n in body for n in NAMES) and "Lilas" not in body

    client, h = _api(w)
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["other"]).status_code == 404
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["resident"]).status_code == 403
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["grafana"]).status_code == 403
    r = client.post(f"/home-alerts/{alert_id}/ack", headers=h["daughter"])
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["acknowledged_by"], body["acknowledged_as"], body["escalation_steps"]) == \
        ("acknowledged", "p-daughter", "daughter", 2)
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["staff"]).json()["acknowledged_by"] == "p-daughter"

    assert w.at(20) == set() and w.at(60) == set()          # no staff, no reminder
    w.deliver(datetime.now(timezone.utc))
    [(subject, told)] = [m for m in mails_to(w.smtp, "nina@example.org") if m[0].startswith("Handled")]
    assert "by the daughter" in told and not any(n in told for n in NAMES)
    assert len(mails_to(w.smtp, "dora@example.org")) == 1   # the acknowledger is not told
    assert w.smtp.to("day@mairie.example") == [] and w.smtp.to("call@mairie.example") == []
    with w.sessions() as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "acknowledge_home_alert")
                          .order_by(AuditEvent.id)).all()
        assert [(e.person_id, e.alert_id, e.via) for e in audit] == [("p-daughter", alert_id, "api"),
                                                                     ("s-day", alert_id, "api")]


def test_ack_via_link_cancels_pending_calls(mail_world):
    w = mail_world
    [alert_id] = w.open(event())
    w.at(0)
    w.deliver()
    [(_, body)] = mails_to(w.smtp, "nina@example.org")
    assert "I am dealing with it: https://vigie.example/ack/" in body   # Nina reads English
    [url] = re.findall(r"https://vigie\.example/ack/\S+", body)
    w.at(10)                                  # the daughter's call is queued, not sent yet
    client, _ = _api(w)
    page = client.get(url.removeprefix("https://vigie.example"))
    assert page.status_code == 200 and "home alert" in page.text and w.alert(alert_id).status == "open"
    assert client.post(url.removeprefix("https://vigie.example")).status_code == 200
    a = w.alert(alert_id)
    assert (a.status, a.acknowledged_by, a.acknowledged_as) == ("acknowledged", "p-neigh", "neighbour")
    assert client.post(url.removeprefix("https://vigie.example")).status_code == 410
    w.deliver(datetime.now(timezone.utc))
    assert w.smtp.to("dora@example.org") == []   # her call was cancelled; she never heard of it
    with w.sessions() as s:
        statuses = dict(s.execute(select(Notification.step, Notification.status)
                                  .where(Notification.person_id == "p-daughter")).all())
        assert statuses == {"s2": DeliveryStatus.CANCELLED}
        [audit] = s.scalars(select(AuditEvent).where(AuditEvent.action == "acknowledge_home_alert")).all()
        assert (audit.via, audit.role, audit.person_id) == ("link", "recipient", "p-neigh")


def test_resolution_when_the_condition_clears(mail_world):
    w = mail_world
    [alert_id] = w.open(event(HomeEventKind.WATER_LEAK, sensor="s-leak"))
    w.at(0)
    w.deliver()
    w.clock.now = w.t0 + 3 * MIN
    # A tick that did not evaluate the home (no data) resolves nothing.
    assert w.esc.apply_events([], evaluated_homes=["home-2"]).resolved == 0
    assert w.esc.apply_events([event(HomeEventKind.WATER_LEAK, sensor="s-leak")], ["home-1"]).updated == 1
    assert w.esc.apply_events([], evaluated_homes=["home-1"]).resolved == 1
    a = w.alert(alert_id)
    assert (a.status, a.resolved_by) == ("resolved", None)
    assert w.at(30) == set()
    w.deliver()
    [(subject, body)] = [m for m in mails_to(w.smtp, "nina@example.org") if m[0].startswith("Alert over")]
    assert "things went back to normal on 16 Mar at 10:03" in body
    # Reported again with the same start: a closed episode stays closed.
    assert w.esc.apply_events([event(HomeEventKind.WATER_LEAK, sensor="s-leak")], ["home-1"]).opened == 0


def test_possible_fall_is_closed_by_a_person_after_acknowledgement(mail_world):
    w = mail_world
    [alert_id] = w.open(event(HomeEventKind.LONG_BATHROOM))
    w.at(0)
    w.deliver()
    assert w.esc.apply_events([], evaluated_homes=["home-1"]).cleared == 1
    assert w.alert(alert_id).status == "open" and w.alert(alert_id).condition_cleared_at is not None
    assert w.at(10) == {("p-daughter", "s2")}          # still escalating: someone must check
    w.deliver()
    client, h = _api(w)
    assert client.post(f"/home-alerts/{alert_id}/resolve", headers=h["staff"]).status_code == 409
    with pytest.raises(AlertNotAcknowledgedError):
        w.esc.resolve(alert_id, "s-day")
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["staff"]).json()["acknowledged_as"] == "staff"
    r = client.post(f"/home-alerts/{alert_id}/resolve", headers=h["daughter"])
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert client.post(f"/home-alerts/{alert_id}/ack", headers=h["daughter"]).status_code == 409
    w.deliver(datetime.now(timezone.utc))
    subjects = [m[0] for m in mails_to(w.smtp, "dora@example.org")]
    assert subjects[1].startswith("Pris en charge") and subjects[2].startswith("Fin d'alerte")
    [(_, closed)] = [m for m in mails_to(w.smtp, "nina@example.org") if m[0].startswith("Alert over")]
    assert re.search(r"was closed on \d+ \w+ at \d\d:\d\d by the town hall's staff", closed)


def test_api_scoping_of_home_alerts(world):
    ids = world.open(event(), event(HomeEventKind.SENSOR_SILENT, sensor="s-1"),
                     event(home="home-2"), evaluated=("home-1", "home-2"))
    client, h = _api(world)

    def listed(who, **params):
        r = client.get("/home-alerts", headers=h[who], params=params)
        assert r.status_code == 200
        return [(a["household_id"], a["kind"]) for a in r.json()]

    assert sorted(listed("staff")) == [("home-1", "long_bathroom"), ("home-1", "sensor_silent")]
    assert sorted(listed("grafana")) == sorted(listed("staff"))
    assert listed("daughter") == [("home-1", "long_bathroom")] == listed("resident")
    assert listed("other") == [("home-2", "long_bathroom")] and listed("staff_c2") == listed("other")
    assert listed("staff", status="resolved") == []
    assert client.get(f"/home-alerts/{ids[1]}", headers=h["daughter"]).status_code == 404
    one = client.get(f"/home-alerts/{ids[0]}", headers=h["daughter"]).json()
    assert one["summary"].startswith("Dans la salle de bain depuis 25 min") and one["sensor_id"] is None
    assert client.get("/home-alerts").status_code == 401


# --- idempotence, concurrency, restart ------------------------------------------------------------
def test_notifications_are_unique_per_step(world):
    [alert_id] = world.open(event())
    world.at(0)
    with world.sessions() as s, pytest.raises(IntegrityError):
        s.add(Notification(home_alert_id=alert_id, person_id="p-neigh", reason="escalation", step="s1",
                           next_attempt_at=MONDAY_10, created_at=MONDAY_10))
        s.commit()


def test_concurrent_ticks_create_no_duplicate(tmp_path, db_url):
    w = World(tmp_path, db_url)
    try:
        starts = [MONDAY_10 + timedelta(seconds=i) for i in range(12)]
        w.open(*(event(start=t) for t in starts))
        engines = [make_engine(db_url) for _ in range(4)]
        engines_esc = [Escalation(make_sessionmaker(e), w.settings) for e in engines]
        for minutes in (0, 10, 15, 20, 25, 30):
            now = MONDAY_10 + timedelta(minutes=minutes, seconds=30)
            barrier = threading.Barrier(len(engines_esc))
            errors: list[BaseException] = []

            def run(esc: Escalation) -> None:
                try:
                    barrier.wait()
                    esc.tick(now)
                except BaseException as exc:   # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(e,)) for e in engines_esc]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
        queued = [(a, p, s) for a, p, s in _all_notifications(w)]
        assert len(queued) == len(set(queued))
        per_alert = Counter(a for a, _, _ in queued)
        # Each alert: neighbour s1 r1 r2, daughter s2 r1, staff (2) s3 s4 — the same for every alert.
        assert set(per_alert.values()) == {3 + 2 + 4}
        with w.sessions() as s:
            steps = Counter(s.scalars(select(EscalationStep.home_alert_id)))
        assert set(steps.values()) == {4}
        for e in engines:
            e.dispose()
    finally:
        w.close()


def _all_notifications(w: World) -> list[tuple[int, str, str]]:
    with w.sessions() as s:
        return [tuple(r) for r in s.execute(select(Notification.home_alert_id, Notification.person_id,
                                                   Notification.step).where(Notification.home_alert_id.is_not(None)))]


_DRIVER = """
import sys
from datetime import datetime
from vigie.context import AppContext
from vigie.scheduler import escalation_job
ctx = AppContext.create(ensure_influx=False)
for line in sys.stdin:
    escalation_job(ctx, datetime.fromisoformat(line.strip()))
    print("done", flush=True)
"""


def test_restart_mid_chain_skips_no_level_and_repeats_none(tmp_path, db_url, smtp_server):
    """The escalation runs in a real process that is killed (SIGKILL) between level 2 and staff, then
    in fresh processes (``vigie escalate --at``); e-mail goes to the SMTP sink."""
    w = World(tmp_path, db_url, smtp_server)
    [alert_id] = w.open(event())
    w.close()
    env = {**os.environ, "VIGIE_DATABASE_URL": db_url, "VIGIE_DATA_DIR": str(tmp_path / "var"),
           "VIGIE_TIMEZONE": PARIS, "VIGIE_SMTP_URL": w.settings.smtp_url, "VIGIE_PUBLIC_URL": "https://vigie.example",
           "VIGIE_INFLUX_URL": "http://127.0.0.1:9", "VIGIE_REGISTRY_FILE": ""}
    env.pop("VIGIE_REGISTRY_FILE")
    service = subprocess.Popen([sys.executable, "-c", _DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        for minutes in (0, 5, 10):
            service.stdin.write((MONDAY_10 + timedelta(minutes=minutes)).isoformat() + "\n")
            service.stdin.flush()
            assert service.stdout.readline().strip() == "done", service.stderr.read()
    finally:
        os.killpg(service.pid, signal.SIGKILL)   # mid-chain: staff is due at +20
        service.wait(30)
    assert service.returncode == -signal.SIGKILL

    def escalate(minutes: float) -> dict:
        done = subprocess.run([sys.executable, "-m", "vigie", "escalate", "--at",
                               (MONDAY_10 + timedelta(minutes=minutes)).isoformat()],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert escalate(10)["calls"] == 0                # the restarted process repeats nothing
    assert escalate(21)["calls"] == 2                # staff, on time
    assert escalate(21.5)["calls"] == 0
    w = World(tmp_path, db_url, smtp_server)
    try:
        assert w.queued(alert_id) == [("p-neigh", "s1"), ("p-daughter", "s2"), ("s-call", "s3"), ("s-day", "s3"),
                                      ("p-neigh", "r1")]
        for address, count in (("nina@example.org", 2), ("dora@example.org", 1), ("day@mairie.example", 1),
                               ("call@mairie.example", 1)):
            assert len(smtp_server.to(address)) == count, address
        with w.sessions() as s:
            assert set(s.scalars(select(Notification.status).where(Notification.home_alert_id == alert_id))) == \
                {DeliveryStatus.SENT}
    finally:
        w.close()


# --- registry, windows, messages ---------------------------------------------------------------------
def test_registry_escalation_fields(world, tmp_path):
    with world.sessions() as s:
        hh = s.get(Household, "home-1")
        assert (hh.escalation_wait_min, hh.reminder_interval_min) == (10.0, 15.0)
        staff = {p.id: (p.staff_commune, p.availability) for p in s.scalars(select(Person)
                                                                           .where(Person.staff_commune.is_not(None)))}
        assert staff == {"s-day": ("c1", "mon-fri 08:00-18:00"), "s-call": ("c1", None)}
        assert s.get(Person, "p-daughter").quiet_hours == "22:00-07:00"
        bad = {"quiet_hours: 'nightly'": "expected", "level: 1000": "1 to 999", "notify: {urgent: [email]}": "notify",
               "notify: {high: [sms]}": "notify.high", "availability: 'mon-fry 08:00-09:00'": "days"}
        for entry, message in bad.items():
            (tmp_path / "bad.yaml").write_text(
                "households:\n  - id: home-9\n    caregivers:\n      - {id: p-9, relation: son, " + entry + "}\n")
            with pytest.raises(RegistryError, match=re.escape(message)):
                load_registry_file(s, tmp_path / "bad.yaml")
        (tmp_path / "bad.yaml").write_text("households:\n  - id: home-9\n    escalation: {wait_min: 0}\n")
        with pytest.raises(RegistryError, match="wait_min"):
            load_registry_file(s, tmp_path / "bad.yaml")
        assert s.get(Household, "home-9") is None


def test_time_windows():
    local = datetime(2026, 3, 16, 23, 30)   # a Monday
    assert within("22:00-07:00", local) and within("22:00-07:00", local.replace(day=17, hour=6, minute=59))
    assert not within("22:00-07:00", local.replace(day=17, hour=7))
    assert within("fri 22:00-06:00", datetime(2026, 3, 21, 5, 0)) and not within("fri 22:00-06:00", local)
    assert within("fri-mon 08:00-09:00", local.replace(hour=8)) and not within("fri-mon 08:00-09:00",
                                                                                local.replace(day=17, hour=8))
    assert within("sat,sun 00:00-24:00", datetime(2026, 3, 22, 23, 59))
    assert parse_windows("mon-fri 08:00-18:00; sat 09:00-12:00")[1].days == frozenset({5})
    for bad in ("25:00-26:00", "mon 8h-9h", "mon-fry 08:00-09:00", "24:00-01:00"):
        with pytest.raises(WindowError):
            parse_windows(bad)


def test_messages_in_both_languages(world):
    [alert_id] = world.open(event(HomeEventKind.NO_WAKEUP))
    a = world.alert(alert_id)
    a.evidence = {**a.evidence, "unit": "s_of_day", "normal": 7 * 3600.0, "threshold": 9 * 3600.0}
    for lang, expect in (("fr", "Pas de lever ce matin : lever habituel vers 07:00"),
                         ("en", "No wake-up this morning: usually up around 07:00")):
        m = render_home(a, NotificationReason.REMINDER, lang, PARIS, "https://vigie.example/ack/x")
        assert expect in m.body and "https://vigie.example/ack/x" in m.body and "home-1" in m.subject
        assert m.subject.startswith(("Rappel : Urgent", "Reminder: Urgent"))
    assert evidence_event(a.evidence).kind == HomeEventKind.NO_WAKEUP
    links = AckLinks(secret_key_for(world.settings), world.settings, clock=world.clock)
    check = links.check(world.sessions, links.issue(alert_id, "p-neigh", AlertType.HOME))
    assert (check.state, check.alert_type, check.alert_id) == ("valid", AlertType.HOME, alert_id)
