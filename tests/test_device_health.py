"""Device health (vigie.analytics.devices) on a real influxd and a SQLite registry: each family
(water meters, home sensors, heating devices), each kind (silent, low battery, clock drift; a
backlog's burst of drifting offsets is no drift), devices never seen, the thresholds' boundaries, the dating of each state, and ``vigie devices``
(JSON shape, flags, no personal data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from vigie.analytics.devices import (
    DeviceFamily,
    DeviceHealthKind,
    DeviceHealthParams,
    device_health,
)
from vigie.db import make_engine, make_sessionmaker
from vigie.heating_registry import HeatingDeviceInfo
from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability
from vigie.records import HeatingDeviceKind, HeatingReading, MeterReading, SensorEvent, SensorKind
from vigie.registry import load_registry_file
from vigie.store.heating import device_clock_line, heating_line
from vigie.store.homes import HomeSensors, write_availability, write_events
from vigie.store.water import reading_line

# Whole seconds: water readings are stored to the second, so the boundaries below are exact.
NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
PARAMS = DeviceHealthParams()          # the settings' defaults: k = 3, water 3600 s, 20 %, 300 s
WATER_SILENT_S = 3 * 3600              # water interval × k
SENSOR_INTERVAL_S = 3600
TRV_INTERVAL_S = 1800
PERSONAL = ("Alice Exemple", "alice@example.org", "+33600000000", "rue des Lilas", "Bob Aidant")

REGISTRY = f"""
households:
  - id: h-0001
    commune: exemple
    address: "3 rue des Lilas, 12345 Exemple"
    meters:
      - {{id: m-ok}}
      - {{id: m-silent}}
      - {{id: m-edge}}
      - {{id: m-never}}
      - {{id: m-low}}
      - {{id: m-edge-pct}}
      - {{id: m-alarm}}
      - {{id: m-flap}}
      - {{id: m-recovered}}
      - {{id: m-burst}}
    residents:
      - {{id: p-0001, name: Alice Exemple, email: alice@example.org, phone: "+33600000000"}}
    caregivers:
      - {{id: p-0002, name: Bob Aidant, email: bob@example.org, level: 1}}
    sensors:
      - {{id: s-ok, friendly_name: h-0001/kitchen/motion, room: kitchen, kind: motion, expected_interval_s: {SENSOR_INTERVAL_S}}}
      - {{id: s-silent, friendly_name: h-0001/bedroom/motion, room: bedroom, kind: motion, expected_interval_s: {SENSOR_INTERVAL_S}}}
      - {{id: s-edge, friendly_name: h-0001/bathroom/door, room: bathroom, kind: contact, expected_interval_s: {SENSOR_INTERVAL_S}}}
      - {{id: s-never, friendly_name: h-0001/entrance/door, room: entrance, kind: contact}}
      - {{id: s-offline, friendly_name: h-0001/living_room/plug, room: living_room, kind: power}}
      - {{id: s-back, friendly_name: h-0001/living_room/seat, room: living_room, kind: presence}}
      - {{id: s-low, friendly_name: h-0001/bathroom/leak, room: bathroom, kind: water_leak}}
      - {{id: s-edge-pct, friendly_name: h-0001/kitchen/leak, room: kitchen, kind: water_leak}}
  - id: h-0002
    commune: autre
    meters:
      - {{id: m-other}}
buildings:
  - id: b-mairie
    name: Mairie
    commune: exemple
    rooms:
      - id: r-conseil
        name: Salle du conseil
        devices:
          - {{id: trv-ok, kind: trv, friendly_name: mairie/conseil/trv_1, expected_interval_s: {TRV_INTERVAL_S}}}
          - {{id: trv-silent, kind: trv, friendly_name: mairie/conseil/trv_2, expected_interval_s: {TRV_INTERVAL_S}}}
          - {{id: trv-edge, kind: trv, friendly_name: mairie/conseil/trv_3, expected_interval_s: {TRV_INTERVAL_S}}}
          - {{id: trv-never, kind: trv, friendly_name: mairie/conseil/trv_4}}
          - {{id: trv-flag, kind: trv, friendly_name: mairie/conseil/trv_5}}
          - {{id: hm-low, kind: heat_meter, friendly_name: mairie/conseil/compteur}}
      - id: r-accueil
        devices:
          - {{id: out-mairie, kind: outdoor, friendly_name: mairie/exterieur}}
"""


def at(seconds_before_now: float) -> datetime:
    return NOW - timedelta(seconds=seconds_before_now)


def meter(mid: str, ago: float, battery: float | None = None, alarms: tuple[str, ...] = ()) -> str:
    return reading_line(MeterReading(mid, at(ago), index_m3=1.0 + 1e-6 * ago, battery_pct=battery, alarms=alarms))


def sensor(sid: str, kind: SensorKind, ago: float, battery: float | None = None) -> SensorEvent:
    return SensorEvent(sid, at(ago), kind, 0.0, battery_pct=battery)


def heating(did: str, ago: float, **fields) -> str:
    kind = HeatingDeviceKind.HEAT_METER if did.startswith("hm") else (
        HeatingDeviceKind.OUTDOOR if did.startswith("out") else HeatingDeviceKind.TRV)
    room = "r-accueil" if did.startswith("out") else "r-conseil"
    return heating_line(HeatingReading(did, at(ago), **fields), HeatingDeviceInfo(did, kind, "b-mairie", room))


def clock(family: str, device: str, ago: int, offset_s: float) -> str:
    return device_clock_line(family, device, at(ago), offset_s)


@pytest.fixture
def world(tmp_path, influx_store):
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    url = f"sqlite:///{tmp_path / 'vigie.db'}"
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    influx_store.write_lines([
        *(meter("m-ok", h * 3600, battery=80) for h in range(0, 5)),
        meter("m-silent", WATER_SILENT_S + 1, battery=80),
        meter("m-edge", WATER_SILENT_S, battery=80),
        meter("m-other", 60),
        # low: 25 → 20 (at the threshold: low from here) → 18
        meter("m-low", 7200, battery=25), meter("m-low", 3600, battery=20), meter("m-low", 60, battery=18),
        meter("m-edge-pct", 60, battery=20.5),
        # the meter's own flag, among other alarms, without a percentage
        meter("m-alarm", 7200), meter("m-alarm", 3600, alarms=("LOW_BATTERY",)),
        meter("m-alarm", 60, alarms=("LEAK", "LOW_BATTERY")),
        # low, back above (a battery recovering at rest), low again: dated from the second fall
        meter("m-flap", 10800, battery=15), meter("m-flap", 7200, battery=30), meter("m-flap", 3600, battery=19),
        meter("m-flap", 60, battery=17),
        meter("m-recovered", 3600, battery=10), meter("m-recovered", 60, battery=95),
        meter("m-burst", 60),
        meter("m-ghost", 10 * 86400),          # stored but not registered: not reported
    ])
    events = [sensor("s-ok", SensorKind.MOTION, t, battery=90) for t in (600, 1800, 3600)]
    events += [sensor("s-silent", SensorKind.MOTION, 3 * SENSOR_INTERVAL_S + 0.001),
               sensor("s-edge", SensorKind.CONTACT, 3 * SENSOR_INTERVAL_S),
               sensor("s-offline", SensorKind.POWER, 7200),
               sensor("s-back", SensorKind.PRESENCE, 3600),
               sensor("s-low", SensorKind.WATER_LEAK, 7200, battery=40),
               sensor("s-low", SensorKind.WATER_LEAK, 3600, battery=20),
               sensor("s-edge-pct", SensorKind.WATER_LEAK, 3600, battery=20.5)]
    write_events(influx_store, events, HomeSensors.from_registry(sessions))
    write_availability(influx_store, [
        DeviceAvailability("sensor", "s-offline", False, at(3600), home_id="h-0001"),
        DeviceAvailability("sensor", "s-back", False, at(7200), home_id="h-0001"),
    ])
    influx_store.write_lines([
        # a TRV reports different fields in different messages: its last message is the latest of any
        heating("trv-ok", 1700, temperature_c=20.5, valve_pct=30, battery_pct=70),
        heating("trv-ok", 60, setpoint_c=19.0),
        heating("trv-silent", 3 * TRV_INTERVAL_S + 1, temperature_c=20.0, battery_pct=60),
        heating("trv-edge", 3 * TRV_INTERVAL_S, temperature_c=20.0),
        heating("trv-flag", 7200, temperature_c=19.0, battery_low=False),
        heating("trv-flag", 3600, temperature_c=19.0, battery_low=True, battery_pct=35),
        heating("trv-flag", 60, valve_pct=10),      # a later message without the flag keeps it raised
        heating("hm-low", 7200, energy_kwh=1200.0, battery_pct=21),
        heating("hm-low", 3600, energy_kwh=1201.0, battery_pct=5),
        heating("out-mairie", 600, temperature_c=4.5),
    ])
    influx_store.write_lines([
        # at the threshold, for exactly the minimum span (3600 s of reception time)
        clock("heating", "trv-ok", 3660, 300), clock("heating", "trv-ok", 60, 300),
        clock("water", "m-ok", 7200, 299.9), clock("water", "m-ok", 60, 299.9),   # below the threshold
        clock("water", "m-edge", 10800, 10), clock("water", "m-edge", 7200, -300),  # at it, negative
        clock("water", "m-edge", 60, -400),
        # a backlog: old records received within seconds, each far behind reception: not a clock
        clock("water", "m-burst", 63, -80000), clock("water", "m-burst", 62, -40000),
        clock("water", "m-burst", 61, -3000), clock("water", "m-burst", 60, -400),
        clock("home", "s-ok", 7200, 1000), clock("home", "s-ok", 60, 20),          # drifted, corrected
        clock("water", "m-ghost", 60, 5000),                       # not registered
    ])
    yield influx_store, sessions
    engine.dispose()


EXPECTED = {
    ("water", "m-silent", "silent"), ("water", "m-never", "silent"),
    ("home", "s-silent", "silent"), ("home", "s-never", "silent"), ("home", "s-offline", "silent"),
    ("heating", "trv-silent", "silent"), ("heating", "trv-never", "silent"),
    ("water", "m-low", "low_battery"), ("water", "m-alarm", "low_battery"), ("water", "m-flap", "low_battery"),
    ("home", "s-low", "low_battery"),
    ("heating", "trv-flag", "low_battery"), ("heating", "hm-low", "low_battery"),
    ("water", "m-edge", "clock_drift"), ("heating", "trv-ok", "clock_drift"),
}
# Devices exactly at a threshold: silent one second later, low with a threshold 0.5 % higher.
AT_SILENCE_THRESHOLD = {("water", "m-edge"), ("home", "s-edge"), ("heating", "trv-edge")}


def by_key(found):
    return {(str(h.family), h.device, str(h.kind)): h for h in found}


def test_every_family_and_kind_found_and_nothing_else(world):
    store, sessions = world
    found = device_health(store, sessions, NOW, PARAMS)
    assert set(by_key(found)) == EXPECTED
    assert len(found) == len(EXPECTED)
    # sorted by family, kind, device
    assert [(h.family, h.kind, h.device) for h in found] == sorted((h.family, h.kind, h.device) for h in found)


def test_since_dates_each_state(world):
    store, sessions = world
    got = {k: h.since for k, h in by_key(device_health(store, sessions, NOW, PARAMS)).items()}
    # silent: the last message (to the second for water and heating, to the ms for home events)
    assert got[("water", "m-silent", "silent")] == at(WATER_SILENT_S + 1)
    assert got[("home", "s-silent", "silent")] == at(3 * SENSOR_INTERVAL_S + 0.001)
    assert got[("home", "s-offline", "silent")] == at(7200)
    assert got[("heating", "trv-silent", "silent")] == at(3 * TRV_INTERVAL_S + 1)
    # low battery and clock drift: the first report of the current state
    for key in [k for k in EXPECTED if k[2] == "low_battery"]:
        assert got[key] == at(3600), key      # m-flap: the second fall, not its first low report
    assert got[("water", "m-edge", "clock_drift")] == at(7200)
    assert got[("heating", "trv-ok", "clock_drift")] == at(3660)


def test_never_seen_devices(world):
    store, sessions = world
    found = by_key(device_health(store, sessions, NOW, PARAMS))
    for key, interval in ((("water", "m-never", "silent"), 3600.0), (("home", "s-never", "silent"), 90000.0),
                          (("heating", "trv-never", "silent"), 90000.0)):
        h = found[key]
        assert h.since is None
        assert h.evidence == {"reason": "never_seen", "last_seen": None, "silent_for_s": None,
                              "expected_interval_s": interval, "threshold_s": 3 * interval}


def test_evidence_and_location(world):
    store, sessions = world
    found = by_key(device_health(store, sessions, NOW, PARAMS))
    m = found[("water", "m-silent", "silent")]
    assert m.evidence == {"reason": "no_message", "last_seen": at(WATER_SILENT_S + 1).isoformat(),
                          "silent_for_s": WATER_SILENT_S + 1.0, "expected_interval_s": 3600.0,
                          "threshold_s": float(WATER_SILENT_S)}
    assert (m.commune, m.household, m.building, m.room) == ("exemple", "h-0001", None, None)
    off = found[("home", "s-offline", "silent")]
    assert off.evidence["reason"] == "zigbee2mqtt_offline" and off.evidence["zigbee2mqtt_online"] is False
    trv = found[("heating", "trv-flag", "low_battery")]
    assert (trv.commune, trv.household, trv.building, trv.room) == ("exemple", None, "b-mairie", "r-conseil")
    assert trv.evidence["battery_low_flag"] is True and trv.evidence["battery_pct"] == 35.0
    alarm = found[("water", "m-alarm", "low_battery")]
    assert alarm.evidence["battery_pct"] is None and alarm.evidence["battery_low_flag"] is True
    hm = found[("heating", "hm-low", "low_battery")]
    assert hm.evidence["battery_pct"] == 5.0 and hm.evidence["threshold_pct"] == 20.0
    drift = found[("water", "m-edge", "clock_drift")]
    assert drift.evidence == {"offset_s": -400.0, "threshold_s": 300.0, "measured_at": at(60).isoformat()}
    assert json.loads(json.dumps([h.to_dict() for h in found.values()]))   # JSON-able as is


def test_threshold_boundaries(world):
    store, sessions = world
    base = set(by_key(device_health(store, sessions, NOW, PARAMS)))
    later = set(by_key(device_health(store, sessions, NOW + timedelta(seconds=1), PARAMS)))
    assert later - base == {(f, d, "silent") for f, d in AT_SILENCE_THRESHOLD}
    higher = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(battery_pct=20.5))))
    assert higher - base == {("water", "m-edge-pct", "low_battery"), ("home", "s-edge-pct", "low_battery")}
    lower = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(battery_pct=19.9))))
    assert base - lower == {("home", "s-low", "low_battery")}         # exactly 20 % is low
    tighter = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_drift_s=299.9))))
    assert tighter - base == {("water", "m-ok", "clock_drift")}
    looser = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_drift_s=300.1))))
    # exactly 300 s drifts; past 300.1 s, m-edge has one point (-400 s): a drift of 0 s, under the span
    assert base - looser == {("heating", "trv-ok", "clock_drift"), ("water", "m-edge", "clock_drift")}
    # the span: a drift of exactly 3600 s of reception time (trv-ok) counts; a longer minimum drops it
    shorter = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_min_span_s=3599.5))))
    assert shorter == base
    longer = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_min_span_s=3600.5))))
    assert base - longer == {("heating", "trv-ok", "clock_drift")}
    # without a span (the former rule) the backlog's burst of 3 s would read as a drift
    burst = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_min_span_s=3))))
    assert burst - base == {("water", "m-burst", "clock_drift")}
    assert set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(clock_min_span_s=3.5)))) == base
    # the water interval is a setting: doubled, the silent meter is not silent any more
    slow = set(by_key(device_health(store, sessions, NOW, DeviceHealthParams(water_interval_s=7200))))
    assert base - slow == {("water", "m-silent", "silent")}


def run_cli(store, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_INFLUX_URL=store.url, VIGIE_INFLUX_DATABASE=store.database,
               VIGIE_DATABASE_URL=f"sqlite:///{tmp_path / 'vigie.db'}", VIGIE_TIMEZONE="Europe/Paris",
               VIGIE_DATA_DIR=str(tmp_path / "var"))
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "devices", *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_cli_json_flags_and_table(world, tmp_path):
    store, _ = world
    # The command runs at the wall clock's now, later than NOW: leave out devices at a threshold.
    def keys(rows):
        return {(r["family"], r["device"], r["kind"]) for r in rows if (r["family"], r["device"]) not in
                AT_SILENCE_THRESHOLD or r["kind"] != "silent"}

    rows = json.loads(run_cli(store, tmp_path, "--json").stdout)
    assert keys(rows) == EXPECTED
    for r in rows:
        assert list(r) == ["family", "device", "kind", "since", "commune", "household", "building", "room",
                           "evidence"]
        assert r["since"] is None or datetime.fromisoformat(r["since"]).tzinfo is not None
        assert isinstance(r["evidence"], dict)
    silent = json.loads(run_cli(store, tmp_path, "--silent", "--json").stdout)
    assert keys(silent) == {k for k in EXPECTED if k[2] in ("silent", "low_battery")}
    low = json.loads(run_cli(store, tmp_path, "--low-battery", "--json").stdout)
    assert keys(low) == {k for k in EXPECTED if k[2] == "low_battery"}
    heating_only = json.loads(run_cli(store, tmp_path, "--family", "heating", "--json").stdout)
    assert keys(heating_only) == {k for k in EXPECTED if k[0] == "heating"}
    table = run_cli(store, tmp_path, "--silent").stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["family", "device", "kind", "since"]
    assert any(ln.split()[:3] == ["water", "m-never", "silent"] and "never seen" in ln for ln in lines)
    assert any(ln.split()[:3] == ["heating", "trv-flag", "low_battery"] and "b-mairie/r-conseil" in ln
               for ln in lines)
    assert not any("clock_drift" in ln for ln in lines)
    for text in (table, json.dumps(rows, ensure_ascii=False)):
        for personal in (*PERSONAL, "h-0001/kitchen/motion", "mairie/conseil/trv_1", "Salle du conseil"):
            assert personal not in text


def test_cli_refuses_an_unknown_family(world, tmp_path):
    store, _ = world
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "devices", "--family", "gas"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--family" in run.stderr


def test_nothing_registered_nothing_stored(tmp_path, influx_store):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert device_health(influx_store, make_sessionmaker(engine), NOW, PARAMS) == []
    finally:
        engine.dispose()
