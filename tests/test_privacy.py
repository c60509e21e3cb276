"""Data-subject access and erasure (vigie.privacy) on a real InfluxDB and SQLite."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from vigie.alerts.models import Alert, DeliveryAttempt, Notification
from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo
from vigie.privacy import UnknownPerson, erase_person, export_person
from vigie.records import CheckResult, CheckStatus, LeakRule, MeterReading, Room, SensorEvent, SensorKind
from vigie.registry import Household, Meter, Person, RegistryRow, upsert_rows
from vigie.store.homes import HomeSensors, write_availability, write_events
from vigie.store.water import write_checks, write_readings

UTC = timezone.utc
TZ = ZoneInfo("Europe/Paris")
# Home sensor reports go to the events policy (90 days), which refuses older points: date them
# yesterday, to the millisecond (two reports of one sensor within one second must both be kept).
RECENT = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=123_000)
SENSORS = HomeSensors.of([SensorInfo("s-h1", SensorKind.MOTION, Room.KITCHEN, "h1"),
                          SensorInfo("s-h2", SensorKind.CONTACT, Room.ENTRANCE, "h2")])


@pytest.fixture
def sm(sqlite_url):
    sm = make_sessionmaker(make_engine(sqlite_url))
    with sm() as s:
        upsert_rows(s, [
            RegistryRow("h1", meter_id="m1", address="1 rue A"),
            RegistryRow("h1", person_id="p1", name="Anne Un", email="anne@example.org", phone="+33 6 11 22 33 44"),
            RegistryRow("h1", person_id="p2", name="Bruno Deux", email="bruno@example.org"),
            RegistryRow("h2", meter_id="m2", address="2 rue B"),
            RegistryRow("h2", person_id="p3", name="Chloé Trois", email="chloe@example.org"),
        ])
        for meter, hh, person in (("m1", "h1", "p1"), ("m2", "h2", "p3")):
            alert = Alert(meter_id=meter, household_id=hh, kind="continuous_flow", first_day=date(2026, 3, 1),
                          last_day=date(2026, 3, 1), rate_l_per_h=3.0)
            s.add(alert)
            s.flush()
            n = Notification(alert_id=alert.id, person_id=person, reason="opened", status="sent")
            s.add(n)
            s.flush()
            s.add(DeliveryAttempt(notification_id=n.id, channel="mailto", outcome="sent"))
        s.commit()
    return sm


@pytest.fixture
def store(influx_store):
    t = datetime(2026, 3, 1, 6, tzinfo=UTC)
    write_readings(influx_store, [MeterReading(m, t, 10.0 + i) for i, m in enumerate(("m1", "m2"))])
    write_checks(influx_store, [CheckResult(m, date(2026, 3, 1), LeakRule.CONTINUOUS_FLOW, CheckStatus.LEAK,
                                            rate_l_per_h=3.0, volume_l=72.0, coverage=1.0) for m in ("m1", "m2")],
                 TZ)
    write_events(influx_store, [SensorEvent("s-h1", RECENT, SensorKind.MOTION, 1.0),
                                SensorEvent("s-h2", RECENT, SensorKind.CONTACT, 1.0, battery_pct=87.0),
                                SensorEvent("s-h2", RECENT + timedelta(milliseconds=400), SensorKind.CONTACT, 0.0)],
                 SENSORS)
    write_availability(influx_store, [DeviceAvailability("sensor", "s-h1", True, RECENT, home_id="h1"),
                                      DeviceAvailability("sensor", "s-h2", True, RECENT, home_id="h2"),
                                      DeviceAvailability("bridge", "zigbee2mqtt/bridge-2", True, RECENT)])
    return influx_store


def _points(store, meter: str) -> int:
    total = 0
    for rp in (store.retention_policy, store.policy_for("aggregates")):
        for m in ("water_reading", "leak_check"):
            rows = store.query_json(f"SELECT * FROM {store.measurement(m, rp)} WHERE meter_id = '{meter}'")
            total += sum(len(s.get("values", [])) for s in rows)
    return total


def _home_points(store, home: str) -> int:
    """Points of ``home`` in the events policy (sensor reports and availability changes)."""
    total = 0
    for m in ("home_event", "sensor_availability"):
        rows = store.query_json(f"SELECT * FROM {store.measurement(m, store.policy_for('events'))} "
                                f"WHERE home_id = '{home}'")
        total += sum(len(s.get("values", [])) for s in rows)
    return total


def _bridge_points(store) -> int:
    rows = store.query_json(f"SELECT * FROM {store.measurement('sensor_availability', store.policy_for('events'))} "
                            "WHERE device_kind = 'bridge'")
    return sum(len(s.get("values", [])) for s in rows)


def test_export_holds_the_record_the_series_and_the_messages(sm, store):
    with sm() as s:
        doc = export_person(s, store, "p3")
    assert doc["person"]["name"] == "Chloé Trois" and doc["person"]["email"] == "chloe@example.org"
    assert doc["households"] == [{"id": "h2", "address": "2 rue B", "role": "resident", "meters": ["m2"]}]
    assert [a["meter_id"] for a in doc["alerts"]] == ["m2"]
    assert doc["notifications"][0]["attempts"][0] == {"at": doc["notifications"][0]["attempts"][0]["at"],
                                                       "channel": "mailto", "outcome": "sent"}
    series = {k: v for k, v in doc["series"].items()}
    readings = [p for k, pts in series.items() if k.endswith(".water_reading") for p in pts]
    checks = [p for k, pts in series.items() if k.endswith(".leak_check") for p in pts]
    assert [(p["meter_id"], p["index_m3"], p["time"]) for p in readings] == [("m2", 11.0, "2026-03-01T06:00:00+00:00")]
    assert [(p["meter_id"], p["status"], p["volume_l"]) for p in checks] == [("m2", "leak", 72.0)]
    assert "Anne" not in repr(doc) and "m1" not in repr(doc["series"])


def test_export_holds_the_home_sensor_events(sm, store):
    with sm() as s:
        doc = export_person(s, store, "p3")
    events = doc["series"]["vigie_events.home_event"]
    later = RECENT + timedelta(milliseconds=400)
    assert [(p["home_id"], p["sensor_id"], p["kind"], p["value"], p["time"]) for p in events] == [
        ("h2", "s-h2", "contact", 1.0, RECENT.isoformat(timespec="milliseconds")),
        ("h2", "s-h2", "contact", 0.0, later.isoformat(timespec="milliseconds"))]
    assert events[0]["battery_pct"] == 87.0 and "battery_pct" not in events[1]
    availability = doc["series"]["vigie_events.sensor_availability"]
    assert [(p["device_id"], p["home_id"], p["online"]) for p in availability] == [("s-h2", "h2", 1.0)]
    assert "s-h1" not in repr(doc["series"]) and "bridge" not in repr(doc["series"])


def test_erasing_the_last_resident_erases_the_household_series_and_alerts(sm, store):
    with sm() as s:
        plan = erase_person(s, store, "p3", dry_run=True)
    assert plan.meters_series_erased == ["m2"] and len(plan.alerts_erased) == 1
    assert plan.home_events_erased == ["h2"]
    assert _points(store, "m2") == 2 and _home_points(store, "h2") == 3  # a dry run changes nothing
    with sm() as s:
        erase_person(s, store, "p3")
    with sm() as s:
        assert s.get(Person, "p3") is None
        assert s.get(Household, "h2").residents == [] and s.get(Meter, "m2").household_id == "h2"
        assert [a.meter_id for a in s.query(Alert)] == ["m1"]
        assert [n.person_id for n in s.query(Notification)] == ["p1"]
        assert s.query(DeliveryAttempt).count() == 1
    assert _points(store, "m2") == 0 and _points(store, "m1") == 2
    assert _home_points(store, "h2") == 0 and _home_points(store, "h1") == 2 and _bridge_points(store) == 1
    with sm() as s, pytest.raises(UnknownPerson):
        export_person(s, store, "p3")


def test_erasing_one_of_two_residents_keeps_the_household_data(sm, store):
    with sm() as s:
        report = erase_person(s, store, "p1")
    assert report.meters_series_erased == [] and report.alerts_erased == [] and report.notifications == 1
    assert report.home_events_erased == []
    with sm() as s:
        assert [p.id for p in s.get(Household, "h1").residents] == ["p2"]
        assert [a.meter_id for a in s.query(Alert).order_by(Alert.id)] == ["m1", "m2"]
    assert _points(store, "m1") == 2 and _home_points(store, "h1") == 2


def test_keep_meter_data_keeps_series_and_alerts(sm, store):
    with sm() as s:
        report = erase_person(s, store, "p3", keep_meter_data=True)
    assert report.home_events_erased == []
    assert _points(store, "m2") == 2 and _home_points(store, "h2") == 3
    with sm() as s:
        assert s.get(Person, "p3") is None and s.query(Alert).count() == 2


def test_cli_export_and_erase(sm, store, sqlite_url, tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_DATABASE_URL=sqlite_url, VIGIE_INFLUX_URL=store.url, VIGIE_INFLUX_DATABASE=store.database,
               VIGIE_DATA_DIR=str(tmp_path / "var"))

    def vigie(*args):
        return subprocess.run([sys.executable, "-m", "vigie.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    out = tmp_path / "p3.json"
    done = vigie("export-person", "p3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    assert json.loads(out.read_text())["person"]["email"] == "chloe@example.org"
    assert "chloe@example.org" not in done.stderr
    unknown = vigie("erase-person", "nobody", "--yes")
    assert unknown.returncode == 4 and "no person 'nobody'" in unknown.stderr
    erased = vigie("erase-person", "p3", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["meters_series_erased"] == ["m2"]
    assert json.loads(erased.stdout)["home_events_erased"] == ["h2"]
    assert _points(store, "m2") == 0 and _home_points(store, "h2") == 0


def test_caregivers_keys_access_log_and_links(sm, store):
    from vigie.alerts.acklinks import UsedAckLink
    from vigie.audit import Actor, AuditAction, record
    from vigie.auth import ApiKey, authenticate, create_key
    from vigie.registry import CaregiverLink

    with sm() as s:
        upsert_rows(s, [RegistryRow("h2", person_id="p4", name="Denise Voisine", role="caregiver",
                                    relation="neighbour", level=1)])
        resident_key = create_key(s, "resident", person_id="p3")
        create_key(s, "caregiver", person_id="p4")
        record(s, Actor(None, "caregiver", "p4"), AuditAction.READ_STATUS, household_id="h2")
        s.add(UsedAckLink(jti="j1", alert_id=2, person_id="p3"))
        s.commit()
    with sm() as s:
        doc = export_person(s, store, "p3")
        carer = export_person(s, store, "p4")
    assert [k["key_id"] for k in doc["api_keys"]] == [resident_key.key_id]
    assert "secret" not in repr(doc["api_keys"]) and resident_key.token not in repr(doc)
    assert [(e["person_id"], e["action"], e["household_id"]) for e in doc["access_log"]] == [
        ("p4", "read_status", "h2")]
    assert carer["caregiving"] == [{"household_id": "h2", "relation": "neighbour", "level": 1,
                                    "history_granted": False}]
    assert carer["households"] == [] and carer["series"] == {}  # the home's readings are the resident's
    with sm() as s:
        report = erase_person(s, store, "p4")
    assert report.caregiving_unlinked == ["h2"] and report.meters_series_erased == []
    with sm() as s:
        erase_person(s, store, "p3")
    with sm() as s:
        assert s.query(CaregiverLink).count() == 0
        assert s.query(ApiKey).filter(ApiKey.person_id.in_(["p3", "p4"])).count() == 0
        assert s.query(UsedAckLink).count() == 0
        assert authenticate(s, resident_key.token) is None
        from vigie.audit import AuditEvent
        assert s.query(AuditEvent).count() == 1  # accountability for past access stays, ids only


def test_home_alerts_are_exported_and_erased_with_the_last_resident(sm, store):
    from vigie.alerts.models import HomeAlert

    with sm() as s:
        for hh in ("h1", "h2"):
            s.add(HomeAlert(household_id=hh, kind="inactivity", severity="high", sensor_id="",
                            start=datetime(2026, 3, 1, 9, tzinfo=UTC), evidence={"last_room": "kitchen"}))
        s.commit()
        hh2_alert = s.query(HomeAlert).filter_by(household_id="h2").one().id
        s.add(Notification(home_alert_id=hh2_alert, person_id="p3", reason="opened", status="sent", step="1"))
        s.commit()
    with sm() as s:
        doc = export_person(s, store, "p3")
    assert [(a["household_id"], a["kind"], a["evidence"]) for a in doc["home_alerts"]] == [
        ("h2", "inactivity", {"last_room": "kitchen"})]
    assert any(n["home_alert_id"] == hh2_alert for n in doc["notifications"])
    with sm() as s:
        report = erase_person(s, store, "p3")
    assert report.home_alerts_erased == [hh2_alert]
    with sm() as s:
        assert [a.household_id for a in s.query(HomeAlert)] == ["h1"]
        assert s.query(Notification).filter(Notification.home_alert_id.isnot(None)).count() == 0
