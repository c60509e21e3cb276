"""API authentication and scoping, acknowledgement links and the audit log, on a real SQLite file and
the session's InfluxDB and Mosquitto.

Two communes: ``a`` (households h-a1 and h-a2) and ``b`` (h-b1), one meter and one open alert each.
h-a1 has a resident and two caregivers, one of them granted its consumption history.
Home alerts: h-a1 has an open one (``ha-a1``), an acknowledged one (``ha-a1r``) and a technical,
staff-only one (``ha-a1t``); h-a2 and h-b1 one open each. h-a1's one sensor reported an hour ago.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
import services
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from vigie.access import Access, NotFound
from vigie.alerts.acklinks import AckLinks, UsedAckLink, secret_key_for
from vigie.alerts.delivery import Deliverer
from vigie.alerts.escalation import Escalation
from vigie.alerts.findings import FacilityFinding, FindingRouter, StaffFinding
from vigie.alerts.models import Alert, AlertStatus, HomeAlert
from vigie.alerts.router import AlertRouter
from vigie.api.app import create_app
from vigie.audit import AuditEvent, read_events
from vigie.auth import ApiKey, Role, authenticate, create_key, revoke_key, rotate_key
from vigie.config import Settings
from vigie.context import AppContext
from vigie.db import make_engine, make_sessionmaker
from vigie.heating_reports import HeatingReport
from vigie.ingest.decoders.zigbee2mqtt import SensorInfo
from vigie.records import (HOME_EVENT_SEVERITY, CheckResult, CheckStatus, HomeEvent, HomeEventKind, LeakRule,
                           MeterReading, Room, SensorEvent, SensorKind)
from vigie.registry import CaregiverLink, Household, RegistryError, load_registry_file
from vigie.store import InfluxStore
from vigie.store.homes import HomeSensors, write_events
from vigie.store.water import write_readings

DAY = date(2026, 3, 14)
FIRST_READING = datetime(2026, 3, 9, 23, 0, tzinfo=timezone.utc)   # 2026-03-10 00:00 in Paris
REGISTRY = """
households:
  - id: h-a1
    commune: a
    address: "1 rue Secrète"
    meters: [{id: m-a1, driver: izar}]
    residents: [{id: p-a1, name: Alice Exemple, email: alice@example.org, language: en}]
    caregivers:
      - {id: p-cg-yes, name: Carl Exemple, email: carl@example.org, relation: son, level: 1}
      - {id: p-cg-no, name: Nora Voisine, relation: neighbour, level: 2}
  - id: h-a2
    commune: a
    meters: [{id: m-a2}]
    residents: [{id: p-a2, name: Bob Exemple}]
  - id: h-b1
    commune: b
    meters: [{id: m-b1}]
    residents: [{id: p-b1, name: Berthe Exemple}]
buildings:
  - id: b-a
    name: Mairie A
    commune: a
    rooms: [{id: r-a1, name: Salle A1, devices: [{id: trv-a1, kind: trv, friendly_name: a/r1/trv}]}]
  - id: b-b
    name: Mairie B
    commune: b
    rooms: [{id: r-b1, name: Salle B1, devices: [{id: trv-b1, kind: trv, friendly_name: b/r1/trv}]}]
"""
PRINCIPALS = {
    "staff_a": dict(role=Role.STAFF, person_id="s-a", commune="a"),
    "staff_b": dict(role=Role.STAFF, person_id="s-b", commune="b"),
    "resident_a1": dict(role=Role.RESIDENT, person_id="p-a1"),
    "caregiver_granted": dict(role=Role.CAREGIVER, person_id="p-cg-yes"),
    "caregiver": dict(role=Role.CAREGIVER, person_id="p-cg-no"),
    "grafana_a": dict(role=Role.GRAFANA, commune="a"),
}
ROLES = [*PRINCIPALS, "anon"]


def _settings(tmp, influxd, db_url: str, **kw) -> Settings:
    # No broker: these tests need none, and /ready then answers 503 to everyone, deterministically.
    return Settings(database_url=db_url, data_dir=tmp / "var", mqtt_url=f"mqtt://127.0.0.1:{services.free_port()}",
                    influx_url=services.influx_url(influxd), influx_database=f"auth_{uuid.uuid4().hex[:8]}",
                    public_url="https://vigie.example", timezone="Europe/Paris", **kw)


class World:
    """The app over the two communes, with a token per principal and the alert id per meter."""

    def __init__(self, tmp, influxd) -> None:
        self.settings = _settings(tmp, influxd, f"sqlite:///{tmp / 'vigie.db'}")
        (tmp / "registry.yaml").write_text(REGISTRY, encoding="utf-8")
        store = InfluxStore.from_settings(self.settings)
        store.ensure_database("INF")
        # m-a1: hourly readings over 2026-03-10 and 11 (Paris), 10 L an hour.
        write_readings(store, [MeterReading("m-a1", FIRST_READING + timedelta(hours=h), 100 + h * 0.01)
                               for h in range(48)])
        # The events policy (90 days) refuses older points: h-a1's sensor reported an hour ago.
        self.last_sensor_report = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=250_000)
        write_events(store, [SensorEvent("s-a1", self.last_sensor_report - timedelta(minutes=5),
                                         SensorKind.MOTION, 1.0),
                             SensorEvent("s-a1", self.last_sensor_report, SensorKind.MOTION, 0.0)],
                     HomeSensors.of([SensorInfo("s-a1", SensorKind.MOTION, Room.BEDROOM, "h-a1")]))
        engine = make_engine(self.settings.database_url)
        self.ctx = AppContext(self.settings, store, engine, make_sessionmaker(engine))
        with self.ctx.sessions() as s:
            load_registry_file(s, tmp / "registry.yaml")
            s.get(CaregiverLink, ("h-a1", "p-cg-yes")).history_granted = True
            s.commit()
            self.tokens = {name: create_key(s, **kw).token for name, kw in PRINCIPALS.items()}
        AlertRouter(self.ctx.sessions, self.settings).apply_results([
            CheckResult(meter_id=m, day=DAY, rule=LeakRule.CONTINUOUS_FLOW, status=CheckStatus.LEAK,
                        rate_l_per_h=4.0, night_flow_l_per_h=4.0, volume_l=96.0, coverage=1.0)
            for m in ("m-a1", "m-a2", "m-b1")])
        with self.ctx.sessions() as s:
            self.alerts = {a.meter_id: a.id for a in s.scalars(select(Alert))}
        self.home_alerts = self._home_alerts()
        self.findings = self._findings()
        self.app = create_app(self.ctx)
        self.client = TestClient(self.app)
        self.links = AckLinks(secret_key_for(self.settings), self.settings)

    def _home_alerts(self) -> dict[str, int]:
        at = datetime(2026, 3, 16, 9, 0, tzinfo=timezone.utc)
        made = {"ha-a1": ("h-a1", HomeEventKind.LONG_BATHROOM, None),
                "ha-a1r": ("h-a1", HomeEventKind.WATER_LEAK, "s-w"),
                "ha-a1t": ("h-a1", HomeEventKind.SENSOR_SILENT, "s-t"),
                "ha-a2": ("h-a2", HomeEventKind.INACTIVITY, None),
                "ha-b1": ("h-b1", HomeEventKind.NO_WAKEUP, None)}
        events = {label: HomeEvent(home, kind, at, at, HOME_EVENT_SEVERITY[kind], last_activity=at,
                                   last_room="kitchen", observed=1800.0, normal=600.0, threshold=1200.0, unit="s",
                                   sensor_id=sensor)
                  for label, (home, kind, sensor) in made.items()}
        escalation = Escalation(self.ctx.sessions, self.settings)
        escalation.apply_events(events.values(), ["h-a1", "h-a2", "h-b1"])
        with self.ctx.sessions() as s:
            ids = {(a.household_id, a.kind): a.id for a in s.scalars(select(HomeAlert))}
        out = {label: ids[(home, str(kind))] for label, (home, kind, _) in made.items()}
        escalation.acknowledge(out["ha-a1r"], "s-a", staff=True)
        return out

    def _findings(self) -> dict[str, int]:
        at = datetime(2026, 3, 16, 9, 0, tzinfo=timezone.utc)
        FindingRouter(self.ctx.sessions).apply([
            StaffFinding(commune=c, family="heating", kind="window_open_heating", subject=f"b-{c}/r-{c}1", start=at,
                         end=at + timedelta(hours=2), evidence={"wasted_kwh": 2.5}, building_id=f"b-{c}",
                         room_id=f"r-{c}1", label=f"Mairie {c.upper()} — Salle {c.upper()}1") for c in "ab"], set())
        with self.ctx.sessions() as s:
            s.add(HeatingReport(building_id="b-a", commune="a", week_start=date(2026, 3, 9),
                                body={"building_id": "b-a", "energy_kwh": 120.5}))
            s.commit()
            return {f"f-{f.commune}": f.id for f in s.scalars(select(FacilityFinding))}

    def headers(self, role: str) -> dict:
        return {} if role == "anon" else {"Authorization": f"Bearer {self.tokens[role]}"}

    def alert(self, meter_id: str) -> Alert:
        with self.ctx.sessions() as s:
            return s.get(Alert, self.alerts[meter_id])

    def close(self) -> None:
        self.client.close()
        self.ctx.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, influxd):
    w = World(tmp_path_factory.mktemp("auth"), influxd)
    yield w
    w.close()


# --- who gets what, endpoint by endpoint ----------------------------------------------------------
CONS = "?start=2026-03-10&end=2026-03-12&resolution=day"


def _expect(**by_role):
    """Expected (status, ids) per role; ``others`` fills the roles not named."""
    others = by_role.pop("others", None)
    return {r: by_role.get(r, others) for r in ROLES}


ALL_A = ["m-a1", "m-a2"]
# (method, route template, concrete path, expected per role). A 200 entry is (200, ids) where the
# endpoint returns a list ("ids": the exact meter ids or alert meters listed), else (200, None).
TABLE = [
    ("GET", "/health", "/health", _expect(others=(200, None))),
    ("GET", "/ready", "/ready", _expect(others=(503, None))),
    ("GET", "/metrics", "/metrics", _expect(others=(200, None))),   # counts only: no key, like the probes
    ("GET", "/meters", "/meters", _expect(
        staff_a=(200, ALL_A), staff_b=(200, ["m-b1"]), resident_a1=(200, ["m-a1"]),
        caregiver_granted=(200, ["m-a1"]), caregiver=(200, ["m-a1"]), grafana_a=(200, ALL_A), anon=(401, None))),
    ("GET", "/meters/{meter_id}/consumption", "/meters/m-a1/consumption" + CONS, _expect(
        staff_a=(200, None), resident_a1=(200, None), caregiver_granted=(200, None), grafana_a=(200, None),
        caregiver=(403, None), staff_b=(404, None), anon=(401, None))),
    ("GET", "/meters/{meter_id}/consumption", "/meters/m-a2/consumption" + CONS, _expect(
        staff_a=(200, None), grafana_a=(200, None), anon=(401, None), others=(404, None))),
    ("GET", "/meters/{meter_id}/consumption", "/meters/m-none/consumption" + CONS, _expect(
        anon=(401, None), others=(404, None))),
    ("GET", "/alerts", "/alerts", _expect(
        staff_a=(200, ALL_A), staff_b=(200, ["m-b1"]), resident_a1=(200, ["m-a1"]),
        caregiver_granted=(200, ["m-a1"]), caregiver=(200, ["m-a1"]), grafana_a=(200, ALL_A), anon=(401, None))),
    ("GET", "/alerts", "/alerts?meter_id=m-b1", _expect(
        staff_b=(200, ["m-b1"]), anon=(401, None), others=(200, []))),
    ("GET", "/alerts/{alert_id}", "/alerts/{m-a1}", _expect(
        staff_b=(404, None), anon=(401, None), others=(200, None))),
    ("GET", "/alerts/{alert_id}", "/alerts/{m-a2}", _expect(
        staff_a=(200, None), grafana_a=(200, None), anon=(401, None), others=(404, None))),
    ("GET", "/alerts/{alert_id}", "/alerts/999999", _expect(anon=(401, None), others=(404, None))),
    ("GET", "/households/{household_id}/status", "/households/h-a1/status", _expect(
        staff_b=(404, None), anon=(401, None), others=(200, None))),
    ("GET", "/households/{household_id}/status", "/households/h-b1/status", _expect(
        staff_b=(200, None), anon=(401, None), others=(404, None))),
    ("GET", "/households/{household_id}/status", "/households/h-none/status", _expect(
        anon=(401, None), others=(404, None))),
    ("POST", "/alerts/{alert_id}/ack", "/alerts/{m-b1}/ack", _expect(
        staff_b=(200, None), grafana_a=(403, None), anon=(401, None), others=(404, None))),
    ("POST", "/alerts/{alert_id}/ack", "/alerts/999999/ack", _expect(
        grafana_a=(403, None), anon=(401, None), others=(404, None))),
    ("POST", "/alerts/{alert_id}/ack", "/alerts/{m-a1}/ack", _expect(
        grafana_a=(403, None), staff_b=(404, None), anon=(401, None), others=(200, None))),
    # Home alerts: technical ones (ha-a1t) for staff and grafana only; residents and grafana never act.
    ("GET", "/home-alerts", "/home-alerts", _expect(
        staff_a=(200, ["ha-a1", "ha-a1r", "ha-a1t", "ha-a2"]), grafana_a=(200, ["ha-a1", "ha-a1r", "ha-a1t", "ha-a2"]),
        staff_b=(200, ["ha-b1"]), resident_a1=(200, ["ha-a1", "ha-a1r"]), caregiver_granted=(200, ["ha-a1", "ha-a1r"]),
        caregiver=(200, ["ha-a1", "ha-a1r"]), anon=(401, None))),
    ("GET", "/home-alerts/{alert_id}", "/home-alerts/{ha-a1}", _expect(
        staff_b=(404, None), anon=(401, None), others=(200, None))),
    ("GET", "/home-alerts/{alert_id}", "/home-alerts/{ha-a1t}", _expect(
        staff_a=(200, None), grafana_a=(200, None), anon=(401, None), others=(404, None))),
    ("GET", "/home-alerts/{alert_id}", "/home-alerts/{ha-b1}", _expect(
        staff_b=(200, None), anon=(401, None), others=(404, None))),
    ("GET", "/home-alerts/{alert_id}", "/home-alerts/999999", _expect(anon=(401, None), others=(404, None))),
    ("POST", "/home-alerts/{alert_id}/ack", "/home-alerts/{ha-a1}/ack", _expect(
        staff_a=(200, None), caregiver_granted=(200, None), caregiver=(200, None), resident_a1=(403, None),
        grafana_a=(403, None), staff_b=(404, None), anon=(401, None))),
    ("POST", "/home-alerts/{alert_id}/ack", "/home-alerts/{ha-b1}/ack", _expect(
        staff_b=(200, None), resident_a1=(403, None), grafana_a=(403, None), anon=(401, None), others=(404, None))),
    ("POST", "/home-alerts/{alert_id}/ack", "/home-alerts/999999/ack", _expect(
        resident_a1=(403, None), grafana_a=(403, None), anon=(401, None), others=(404, None))),
    ("POST", "/home-alerts/{alert_id}/resolve", "/home-alerts/{ha-a1r}/resolve", _expect(
        staff_a=(200, None), caregiver_granted=(200, None), caregiver=(200, None), resident_a1=(403, None),
        grafana_a=(403, None), staff_b=(404, None), anon=(401, None))),
    ("POST", "/home-alerts/{alert_id}/resolve", "/home-alerts/999999/resolve", _expect(
        resident_a1=(403, None), grafana_a=(403, None), anon=(401, None), others=(404, None))),
    # Links carry their own credentials: a bearer key neither helps nor is needed.
    ("GET", "/buildings", "/buildings", _expect(
        staff_a=(200, ["b-a"]), grafana_a=(200, ["b-a"]), staff_b=(200, ["b-b"]), anon=(401, None),
        others=(403, None))),
    ("GET", "/findings", "/findings", _expect(
        staff_a=(200, ["b-a/r-a1"]), grafana_a=(200, ["b-a/r-a1"]), staff_b=(200, ["b-b/r-b1"]),
        anon=(401, None), others=(403, None))),
    ("GET", "/findings", "/findings?status=resolved", _expect(
        staff_a=(200, []), grafana_a=(200, []), staff_b=(200, []), anon=(401, None), others=(403, None))),
    ("POST", "/findings/{finding_id}/ack", "/findings/{f-a}/ack", _expect(
        staff_a=(200, None), staff_b=(404, None), anon=(401, None), others=(403, None))),
    ("POST", "/findings/{finding_id}/ack", "/findings/999999/ack", _expect(
        staff_a=(404, None), staff_b=(404, None), anon=(401, None), others=(403, None))),
    ("GET", "/buildings/{building_id}/reports", "/buildings/b-a/reports", _expect(
        staff_a=(200, ["b-a"]), grafana_a=(200, ["b-a"]), staff_b=(404, None), anon=(401, None),
        others=(403, None))),
    ("GET", "/buildings/{building_id}/reports", "/buildings/b-none/reports", _expect(
        staff_a=(404, None), grafana_a=(404, None), staff_b=(404, None), anon=(401, None), others=(403, None))),
    ("GET", "/ack/{token}", "/ack/not-a-token", _expect(others=(400, None))),
    ("POST", "/ack/{token}", "/ack/not-a-token", _expect(others=(400, None))),
]


def _concrete(world: World, path: str) -> str:
    path = re.sub(r"\{(ha-[a-z0-9]+)\}", lambda m: str(world.home_alerts[m.group(1)]), path)
    path = re.sub(r"\{(f-[a-z])\}", lambda m: str(world.findings[m.group(1)]), path)
    return re.sub(r"\{(m-[a-z0-9]+)\}", lambda m: str(world.alerts[m.group(1)]), path)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,template,path,expected", TABLE, ids=[f"{m} {p}" for m, _, p, _ in TABLE])
def test_role_gets_exactly_what_it_may(world, method, template, path, expected, role):
    status, ids = expected[role]
    r = world.client.request(method, _concrete(world, path), headers=world.headers(role))
    assert r.status_code == status, (role, r.text)
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if status in (403, 404):
        assert set(r.json()) == {"detail"} and "m-" not in r.text and "h-" not in r.text
    if ids is not None:
        body = r.json()
        labels = {v: k for k, v in world.home_alerts.items()}
        got = [x["id"] if template in ("/meters", "/buildings") else labels[x["id"]] if template == "/home-alerts"
               else x["subject"] if template == "/findings" else x["building_id"] if "reports" in template
               else x["meter_id"] for x in body]
        assert sorted(got) == sorted(ids)


def test_table_covers_every_endpoint(world):
    routes = {(m, r.path) for r in world.app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert routes == {(m, t) for m, t, _, _ in TABLE}


def test_no_personal_details_in_any_answer(world):
    for role in PRINCIPALS:
        for method, _, path, _ in TABLE:
            text = world.client.request(method, _concrete(world, path), headers=world.headers(role)).text
            for detail in ("Alice", "alice@", "Carl", "Secrète", "Berthe"):
                assert detail not in text, (role, path)


def _status(world: World, household: str, role: str) -> dict:
    """The status answer with its times parsed."""
    body = world.client.get(f"/households/{household}/status", headers=world.headers(role)).json()
    for k in ("last_reading_at", "last_sensor_report_at"):
        body[k] = body[k] and datetime.fromisoformat(body[k])
    return body


def test_household_status_is_minimal(world):
    # A known state whatever ran before (each step is harmless to repeat): h-a1's water alert and ha-a1
    # taken on, ha-a1r closed; ha-a1t (technical) stays open.
    for path in (f"/alerts/{world.alerts['m-a1']}/ack", f"/home-alerts/{world.home_alerts['ha-a1']}/ack",
                 f"/home-alerts/{world.home_alerts['ha-a1r']}/resolve"):
        assert world.client.post(path, headers=world.headers("caregiver")).status_code == 200
    water = {"household_id": "h-a1", "open_alerts": 1, "alert_kinds": ["continuous_flow"], "unacknowledged": 0,
             "last_reading_at": FIRST_READING + timedelta(hours=47), "last_sensor_report_at": world.last_sensor_report}
    # Residents and caregivers are never told of technical home alerts (nor called for them).
    for role in ("caregiver", "caregiver_granted", "resident_a1"):
        assert _status(world, "h-a1", role) == {**water, "home_alerts_open": 1, "home_alert_kinds": ["long_bathroom"],
                                                "home_alerts_unacknowledged": 0}, role
    for role in ("staff_a", "grafana_a"):
        assert _status(world, "h-a1", role) == {**water, "home_alerts_open": 2,
                                                "home_alert_kinds": ["long_bathroom", "sensor_silent"],
                                                "home_alerts_unacknowledged": 1}, role
    other = _status(world, "h-a2", "staff_a")
    assert other["last_reading_at"] is None and other["last_sensor_report_at"] is None
    assert (other["home_alerts_open"], other["home_alert_kinds"], other["home_alerts_unacknowledged"]) == (
        1, ["inactivity"], 1)


def test_granted_consumption_is_the_data(world):
    r = world.client.get("/meters/m-a1/consumption" + CONS, headers=world.headers("caregiver_granted"))
    points = r.json()["points"]
    assert len(points) == 2 and points[0]["volume_l"] == pytest.approx(230, abs=15)


def test_acknowledger_is_the_key_person(tmp_path, influxd):
    w = World(tmp_path, influxd)
    try:
        r = w.client.post(f"/alerts/{w.alerts['m-a2']}/ack", headers=w.headers("staff_a"))
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "s-a"
        r = w.client.post(f"/alerts/{w.alerts['m-a1']}/ack", headers=w.headers("caregiver"))
        assert r.json()["acknowledged_by"] == "p-cg-no"
        AlertRouter(w.ctx.sessions, w.settings).resolve(w.alerts["m-b1"], "s-b")
        assert w.client.post(f"/alerts/{w.alerts['m-b1']}/ack", headers=w.headers("staff_b")).status_code == 409
    finally:
        w.close()


# --- authentication ----------------------------------------------------------------------------
def test_unauthenticated_forged_revoked_expired(world):
    c = world.client
    good = world.tokens["staff_a"]
    key_id = good.split("_")[1]
    assert c.get("/meters").status_code == 401
    for header in (f"Basic {good}", "Bearer ", "Bearer nonsense", f"Bearer vigie_{key_id}_" + "A" * 43,
                   f"Bearer vigie_ffffffffffff_{good.split('_', 2)[2]}", f"Bearer {good}x"):
        r = c.get("/meters", headers={"Authorization": header})
        assert r.status_code == 401, header
    with world.ctx.sessions() as s:
        expired = create_key(s, Role.STAFF, person_id="s-x", commune="a",
                             expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)).token
        revoked = create_key(s, Role.STAFF, person_id="s-y", commune="a")
        assert c.get("/meters", headers={"Authorization": f"Bearer {revoked.token}"}).status_code == 200
        revoke_key(s, revoked.key_id)
    for token in (expired, revoked.token):
        assert c.get("/meters", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_only_a_digest_is_stored(world):
    secrets_ = {t.split("_", 2)[2] for t in world.tokens.values()}
    with world.ctx.sessions() as s:
        stored = {k.secret_sha256 for k in s.scalars(select(ApiKey))}
    assert not stored & secrets_
    assert {hashlib.sha256(x.encode()).hexdigest() for x in secrets_} <= stored


def test_rotation_with_and_without_grace(world):
    now = datetime.now(timezone.utc)
    with world.ctx.sessions() as s:
        first = create_key(s, Role.RESIDENT, person_id="p-a1", expires_at=now + timedelta(days=30))
        second = rotate_key(s, first.key_id, grace=timedelta(hours=1))
        assert second.principal == first.principal.__class__(second.key_id, Role.RESIDENT, "p-a1", None)
        # The remaining lifetime carries over; both keys work during the grace period.
        assert second.expires_at - now == pytest.approx(timedelta(days=30), abs=timedelta(seconds=5))
        assert authenticate(s, first.token) is not None and authenticate(s, second.token) is not None
        assert authenticate(s, first.token, now=now + timedelta(hours=2)) is None
        third = rotate_key(s, second.key_id)
        with pytest.raises(ValueError):
            rotate_key(s, second.key_id)
    assert world.client.get("/meters", headers={"Authorization": f"Bearer {second.token}"}).status_code == 401
    r = world.client.get("/meters", headers={"Authorization": f"Bearer {third.token}"})
    assert [m["id"] for m in r.json()] == ["m-a1"]


def test_key_creation_checks_its_principal(world):
    with world.ctx.sessions() as s:
        for kw in (dict(role="resident"), dict(role="resident", person_id="p-nobody"),
                   dict(role="staff", commune="a"), dict(role="staff", person_id="s-a"),
                   dict(role="grafana"), dict(role="grafana", commune="a", person_id="p-a1"), dict(role="root")):
            with pytest.raises(ValueError):
                create_key(s, **kw)


# --- audit log ----------------------------------------------------------------------------------
def test_reads_and_acks_are_audited_without_personal_details(tmp_path, influxd):
    w = World(tmp_path, influxd)
    try:
        h = w.headers("caregiver_granted")
        w.client.get("/meters/m-a1/consumption" + CONS, headers=h)
        w.client.get(f"/alerts/{w.alerts['m-a1']}", headers=h)
        w.client.get("/households/h-a1/status", headers=h)
        w.client.post(f"/alerts/{w.alerts['m-a1']}/ack", headers=h)
        w.client.get("/alerts", headers=w.headers("staff_a"))
        w.client.get("/meters/m-a1/consumption" + CONS, headers=w.headers("caregiver"))   # 403: not audited
        with w.ctx.sessions() as s:
            events = read_events(s, household_id="h-a1")
            key_id = w.tokens["caregiver_granted"].split("_")[1]
            mine = [(e.action, e.meter_id) for e in events if e.key_id == key_id]
            assert mine == [("read_consumption", "m-a1"), ("read_alert", "m-a1"), ("read_status", None),
                            ("acknowledge", "m-a1")]
            assert all(e.role == "caregiver" and e.person_id == "p-cg-yes" for e in events if e.key_id == key_id)
            staff = [e for e in read_events(s, person_id="s-a")]
            assert sorted(e.household_id for e in staff) == ["h-a1", "h-a2"]
            assert {e.action for e in staff} == {"list_alerts"}
            # --person also finds what others read about the person's homes.
            assert {e.person_id for e in read_events(s, person_id="p-a1")} == {"p-cg-yes", "s-a"}
            assert read_events(s, since=datetime.now(timezone.utc) + timedelta(minutes=1)) == []
            for e in s.scalars(select(AuditEvent)):
                assert "Alice" not in repr(vars(e)) and "alice@" not in repr(vars(e))
    finally:
        w.close()


# --- acknowledgement links ----------------------------------------------------------------------
def _names_alert(html: str, alert_id: int) -> bool:
    return re.search(rf"(no\.|n°) {alert_id}\b", html) is not None


def test_ack_link_once_get_does_not_acknowledge(tmp_path, influxd):
    w = World(tmp_path, influxd)
    try:
        alert_id = w.alerts["m-a1"]
        url = w.links.url(alert_id, "p-a1")
        assert url.startswith("https://vigie.example/ack/")
        path = url.removeprefix("https://vigie.example")
        for _ in range(2):   # a mail scanner's prefetch, then the person
            page = w.client.get(path)
            assert page.status_code == 200 and '<form method="post">' in page.text
            assert "no-store" in page.headers["cache-control"] and page.headers["referrer-policy"] == "no-referrer"
            assert w.alert("m-a1").status == AlertStatus.OPEN
        assert "alert no. %d" % alert_id in page.text   # p-a1 reads English
        done = w.client.post(path)
        assert done.status_code == 200
        a = w.alert("m-a1")
        assert a.status == AlertStatus.ACKNOWLEDGED and a.acknowledged_by == "p-a1"
        with w.ctx.sessions() as s:
            [event] = [e for e in read_events(s, household_id="h-a1") if e.action == "acknowledge"]
            assert (event.via, event.person_id, event.key_id, event.alert_id) == ("link", "p-a1", None, alert_id)
        for again in (w.client.post(path), w.client.get(path)):
            assert again.status_code == 410 and not _names_alert(again.text, alert_id)
    finally:
        w.close()


def test_ack_link_expired_tampered_foreign_and_closed(tmp_path, influxd):
    w = World(tmp_path, influxd)
    try:
        alert_id = w.alerts["m-a2"]
        old = AckLinks(secret_key_for(w.settings), w.settings,
                       clock=lambda: datetime.now(timezone.utc) - timedelta(hours=73))
        expired = old.issue(alert_id, "p-a2")
        token = w.links.issue(alert_id, "p-a2")
        body, sig = token.rsplit(".", 1)
        tampered = [body + "." + ("A" if sig[0] != "A" else "B") + sig[1:],
                    body.replace(body[2], "x" if body[2] != "x" else "y", 1) + "." + sig,
                    token[:-3]]
        other_key = Settings(**{**w.settings.model_dump(), "secret_key": "another key entirely"})
        foreign = AckLinks(secret_key_for(other_key), other_key).issue(alert_id, "p-a2")
        for bad, status in [(expired, 410), *[(t, 400) for t in tampered], (foreign, 400)]:
            for method in ("GET", "POST"):
                r = w.client.request(method, f"/ack/{bad}")
                assert r.status_code == status, (bad, method)
                assert not _names_alert(r.text, alert_id)
        assert w.alert("m-a2").status == AlertStatus.OPEN
        with w.ctx.sessions() as s:
            assert s.scalars(select(UsedAckLink)).all() == []
        AlertRouter(w.ctx.sessions, w.settings).resolve(alert_id, "s-a")
        assert w.client.get(f"/ack/{token}").status_code == 409
        assert w.client.post(f"/ack/{token}").status_code == 409
        assert w.alert("m-a2").status == AlertStatus.RESOLVED
    finally:
        w.close()


def test_delivered_message_carries_a_working_link(tmp_path, influxd, smtp_server):
    w = World(tmp_path, influxd)
    try:
        cfg = Settings(**{**w.settings.model_dump(),
                          "smtp_url": f"mailto://127.0.0.1:{smtp_server.port}?from=vigie@commune.example"})
        Deliverer(w.ctx.sessions, cfg).deliver_due()
        [mail] = smtp_server.to("alice@example.org")
        [url] = re.findall(r"https://vigie\.example/ack/\S+", mail.get_body().get_content())
        assert w.client.post(url.removeprefix("https://vigie.example")).status_code == 200
        assert w.alert("m-a1").acknowledged_by == "p-a1"
    finally:
        w.close()


def test_secret_key_file_is_private_and_stable(tmp_path, influxd):
    cfg = _settings(tmp_path, influxd, "sqlite://")
    key = secret_key_for(cfg)
    path = tmp_path / "var" / "secret_key"
    assert path.stat().st_mode & 0o777 == 0o600 and len(key) >= 32
    assert secret_key_for(cfg) == key
    assert secret_key_for(Settings(**{**cfg.model_dump(), "secret_key": "k" * 40})) == b"k" * 40


# --- registry: communes and caregivers ----------------------------------------------------------
def test_registry_caregivers_and_communes(tmp_path, world):
    with world.ctx.sessions() as s:
        assert {h.id: h.commune for h in s.scalars(select(Household))} == {"h-a1": "a", "h-a2": "a", "h-b1": "b"}
        links = {(c.person_id, c.relation, c.level, c.history_granted)
                 for c in s.scalars(select(CaregiverLink))}
        assert links == {("p-cg-yes", "son", 1, True), ("p-cg-no", "neighbour", 2, False)}
        # caregivers are not residents: no leak e-mail to them by the resident path
        assert [p.id for p in s.get(Household, "h-a1").residents] == ["p-a1"]
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("household_id,meter_id,person_id,role,relation,level,commune\n"
                        "h-c1,m-c1,p-c1,,,,\n"
                        "h-c1,,p-c2,caregiver,daughter,1,\n", encoding="utf-8")
    eng = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with make_sessionmaker(eng)() as s:
        load_registry_file(s, csv_file, default_commune="c")
        assert s.get(Household, "h-c1").commune == "c"
        assert s.get(CaregiverLink, ("h-c1", "p-c2")).relation == "daughter"
        for bad in ("h-c1,,p-c3,boss,,,\n", "h-c1,,p-c3,caregiver,,first,\n"):
            csv_file.write_text("household_id,meter_id,person_id,role,relation,level,commune\n" + bad)
            with pytest.raises(RegistryError):
                load_registry_file(s, csv_file)
    eng.dispose()


def test_query_layer_hides_out_of_scope_like_absent(world):
    with world.ctx.sessions() as s:
        acc = Access(s, create_key(s, Role.RESIDENT, person_id="p-a2").principal)
        for alert_id in (world.alerts["m-a1"], 10**9):
            with pytest.raises(NotFound) as exc:
                acc.alert(alert_id)
            assert str(exc.value) == "unknown alert"


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_keys_grant_history_and_audit(tmp_path, monkeypatch, influxd):
    from vigie.cli import app
    from vigie.config import get_settings

    w = World(tmp_path, influxd)
    try:
        monkeypatch.setenv("VIGIE_DATABASE_URL", w.settings.database_url)
        monkeypatch.setenv("VIGIE_DATA_DIR", str(w.settings.data_dir))
        monkeypatch.setenv("VIGIE_COMMUNE", "a")
        get_settings.cache_clear()
        cli = CliRunner()

        made = cli.invoke(app, ["keys", "create", "--role", "staff", "--person", "s-cli"])
        assert made.exit_code == 0, made.output
        token = made.stdout.strip().splitlines()[-1]
        key_id = token.split("_")[1]
        r = w.client.get("/meters", headers={"Authorization": f"Bearer {token}"})
        assert [m["id"] for m in r.json()] == ["m-a1", "m-a2"]   # commune from VIGIE_COMMUNE

        listed = cli.invoke(app, ["keys", "list", "--json"])
        assert key_id in listed.stdout and token.split("_", 2)[2] not in listed.stdout

        rotated = cli.invoke(app, ["keys", "rotate", key_id])
        new_token = rotated.stdout.strip().splitlines()[-1]
        assert w.client.get("/meters", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert w.client.get("/meters", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
        assert cli.invoke(app, ["keys", "revoke", new_token.split("_")[1]]).exit_code == 0
        assert w.client.get("/meters", headers={"Authorization": f"Bearer {new_token}"}).status_code == 401
        assert cli.invoke(app, ["keys", "revoke", "nope"]).exit_code == 4
        assert cli.invoke(app, ["keys", "create", "--role", "resident", "--person", "p-nobody"]).exit_code == 2

        cg = w.headers("caregiver")
        assert w.client.get("/meters/m-a1/consumption" + CONS, headers=cg).status_code == 403
        assert cli.invoke(app, ["registry", "grant-history", "h-a1", "p-cg-no"]).exit_code == 0
        assert w.client.get("/meters/m-a1/consumption" + CONS, headers=cg).status_code == 200
        assert cli.invoke(app, ["registry", "revoke-history", "h-a1", "p-cg-no"]).exit_code == 0
        assert w.client.get("/meters/m-a1/consumption" + CONS, headers=cg).status_code == 403
        assert cli.invoke(app, ["registry", "grant-history", "h-a2", "p-cg-no"]).exit_code == 4

        audit = cli.invoke(app, ["audit", "--household", "h-a1", "--since", "2000-01-01"])
        lines = [line for line in audit.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1 and '"read_consumption"' in lines[0] and '"p-cg-no"' in lines[0]
    finally:
        get_settings.cache_clear()
        w.close()


# --- schemathesis: the whole OpenAPI schema with a staff key, no server error --------------------
def test_openapi_fuzz_no_server_error(world):
    import schemathesis
    from hypothesis import HealthCheck, given, settings as hsettings

    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    headers = world.headers("staff_a")
    for operation in schema.get_all_operations():
        op = operation.ok()

        @given(case=op.as_strategy())
        @hsettings(max_examples=25, deadline=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers=headers)
            # /ready's documented 503: this test runs without a broker.
            allowed = {503} if case.path == "/ready" else set()
            assert response.status_code < 500 or response.status_code in allowed, \
                (case.method, case.formatted_path, response.text)

        check()
