"""Buildings, rooms, heating and LoRaWAN devices in the registry (vigie.heating_registry): YAML
loading through the registry file, refusals, upserts, the ingest lookups, payload mappings, the
analytics' layout and scheduled occupancy (French public holiday, closures, DST change days)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from vigie.db import make_engine, make_sessionmaker
from vigie.heating_registry import (Building, FieldMapping, HeatingDevice, HeatingDeviceInfo, HeatingDirectory,
                                    HeatingLayout, HeatingRoom, LorawanDevice, LorawanDeviceType, MappingError,
                                    load_heating_file, load_heating_layout, occupancy_schedule, parse_heating_file)
from vigie.records import HeatingDeviceKind
from vigie.registry import Household, RegistryError, load_registry_file
from vigie.sensors import RegistryUnavailable
from vigie.timewindows import within

PARIS = ZoneInfo("Europe/Paris")

REGISTRY = """
households:
  - id: h-0001
    meters: [{id: "axw1-000123", driver: axioma}]
buildings:
  - id: b-mairie
    name: Mairie
    commune: exemple
    holidays: FR
    closures: ["2026-12-24..2027-01-01", 2026-08-15]
    outdoor_device: out-mairie
    rooms:
      - id: r-conseil
        name: Salle du conseil
        area_m2: 60
        comfort_c: 20
        setback_c: 16
        schedule: "mon-fri 08:00-12:00; mon-fri 13:30-18:00; sat 09:00-12:00"
        closures: ["2026-11-12"]
        devices:
          - {id: trv-0001, kind: trv, friendly_name: mairie/conseil/trv_1, radiator_w: 1500, expected_interval_s: 1800}
          - {id: trv-0002, kind: trv, friendly_name: mairie/conseil/trv_2, radiator_w: 1000}
          - {id: out-mairie, kind: outdoor, friendly_name: mairie/exterieur}
          - {id: hm-0001, kind: heat_meter, lorawan: {dev_eui: "A84041000181C6A1", type: milesight-wt101}}
      - id: r-accueil
        schedule: "mon-fri 08:30-17:00"
        devices:
          - {id: trv-0003, kind: TRV, friendly_name: mairie/accueil/trv}
lorawan:
  device_types:
    axioma-w1:
      family: water
      fields:
        index_m3: current_volume_m3
        time: timestamp_utc
        flow_l_per_h: {path: flow_m3h, scale: 1000}
      alarms: {leakage: LEAK, burst: burst, backflow: REVERSE_FLOW}
    milesight-wt101:
      family: heating
      fields: {temperature_c: temperature, setpoint_c: target_temperature, valve_pct: valve_opening,
               battery_pct: battery, window_open: window}
  devices:
    - {dev_eui: "70B3D5FFFE0A1B2C", type: axioma-w1, meter: "axw1-000123"}
"""


@pytest.fixture
def sessions(sqlite_url):
    return make_sessionmaker(make_engine(sqlite_url))


def write(tmp_path, text_: str, name: str = "registry.yaml"):
    path = tmp_path / name
    path.write_text(text_, encoding="utf-8")
    return path


def loaded(tmp_path, sessions, **kw):
    with sessions() as s:
        return load_registry_file(s, write(tmp_path, REGISTRY), default_commune="defaut", **kw)


# --- loading ------------------------------------------------------------------------------------

def test_registry_file_loads_households_then_buildings_and_lorawan(tmp_path, sessions):
    counts = loaded(tmp_path, sessions)
    assert counts == {"households": 1, "meters": 1, "persons": 0, "buildings": 1, "heating_rooms": 2,
                      "heating_devices": 5, "lorawan_device_types": 2, "lorawan_devices": 2}
    with sessions() as s:
        b = s.get(Building, "b-mairie")
        assert (b.name, b.commune, b.holidays, b.outdoor_device) == ("Mairie", "exemple", "FR", "out-mairie")
        assert b.closures == [["2026-12-24", "2027-01-01"], ["2026-08-15", "2026-08-15"]]
        accueil = s.get(HeatingRoom, "r-accueil")   # the settings' defaults (R241-26 / R241-27)
        assert (accueil.comfort_c, accueil.setback_c, accueil.schedule) == (19.0, 16.0, "mon-fri 08:30-17:00")
        hm = s.get(HeatingDevice, "hm-0001")
        assert (hm.kind, hm.dev_eui, hm.lorawan_type, hm.friendly_name, hm.expected_interval_s) == \
            (HeatingDeviceKind.HEAT_METER, "a84041000181c6a1", "milesight-wt101", None, 90_000)
        assert s.get(HeatingDevice, "trv-0003").kind is HeatingDeviceKind.TRV
        assert {(r.dev_eui, r.meter_id, r.device_id) for r in s.scalars(select(LorawanDevice))} == {
            ("70b3d5fffe0a1b2c", "axw1-000123", None), ("a84041000181c6a1", None, "hm-0001")}
        axioma = s.get(LorawanDeviceType, "axioma-w1")
        assert axioma.mapping == {"fields": {"index_m3": ["current_volume_m3", 1.0], "time": ["timestamp_utc", 1.0],
                                             "flow_l_per_h": ["flow_m3h", 1000.0]},
                                  "alarms": {"leakage": "LEAK", "burst": "BURST", "backflow": "REVERSE_FLOW"}}


def test_room_defaults_come_from_the_settings_given(tmp_path, sessions):
    loaded(tmp_path, sessions, heating_comfort_c=18.5, heating_setback_c=15)
    with sessions() as s:
        assert (s.get(HeatingRoom, "r-accueil").comfort_c, s.get(HeatingRoom, "r-accueil").setback_c) == (18.5, 15)
        assert s.get(HeatingRoom, "r-conseil").comfort_c == 20


def test_cli_registry_load_takes_the_heating_sections(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vigie.cli import app
    from vigie.config import get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VIGIE_DATABASE_URL", url)
    monkeypatch.setenv("VIGIE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("VIGIE_HEATING_COMFORT_C", "18")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["registry", "load", str(write(tmp_path, REGISTRY))])
        assert result.exit_code == 0, result.output
        assert '"heating_devices": 5' in result.output
        bad = CliRunner().invoke(app, ["registry", "load", str(write(tmp_path, REGISTRY.replace(
            "type: axioma-w1, meter", "type: nope-1, meter"), "bad.yaml"))])
        assert bad.exit_code == 2 and "nope-1 is not defined" in bad.output
    finally:
        get_settings.cache_clear()
    with make_sessionmaker(make_engine(url))() as s:
        assert s.get(HeatingRoom, "r-accueil").comfort_c == 18


def test_a_second_load_upserts_and_deletes_nothing(tmp_path, sessions):
    loaded(tmp_path, sessions)
    second = """
buildings:
  - id: b-mairie
    name: Hôtel de ville
    rooms:
      - id: r-conseil
        schedule: "mon-fri 09:00-12:00"
        devices:
          - {id: trv-0001, kind: trv, friendly_name: mairie/conseil/trv_1, radiator_w: 2000}
          - {id: hm-0001, kind: heat_meter, lorawan: {dev_eui: "a84041000181c6ff", type: milesight-wt101}}
"""
    with sessions() as s:
        counts = load_heating_file(s, write(tmp_path, second, "second.yaml"), default_commune="defaut")
    assert counts["heating_devices"] == 2
    with sessions() as s:
        b = s.get(Building, "b-mairie")
        assert (b.name, b.commune, b.holidays, b.closures, b.outdoor_device) == \
            ("Hôtel de ville", "defaut", None, None, None)        # the entry is the whole truth for it
        assert s.get(HeatingDevice, "trv-0001").radiator_w == 2000
        assert s.get(HeatingRoom, "r-conseil").comfort_c == 19.0
        assert s.get(HeatingRoom, "r-accueil") is not None and s.get(HeatingDevice, "trv-0002") is not None
        # hm-0001 changed radio: its former binding went with the old value, the meter's stays.
        assert {(r.dev_eui, r.device_id or r.meter_id) for r in s.scalars(select(LorawanDevice))} == {
            ("70b3d5fffe0a1b2c", "axw1-000123"), ("a84041000181c6ff", "hm-0001")}
        assert s.scalar(select(func.count()).select_from(HeatingDevice)) == 5


BAD = [
    ("buildings: [{id: b 1}]", "building id 'b 1'"),
    ("buildings: [{id: b1, heating: yes}]", r"unknown key\(s\) heating"),
    ("buildings: [{id: b1, holidays: XX}]", "holidays 'XX'.*not available"),
    ("buildings: [{id: b1, holidays: FR-99}]", "holidays 'FR-99'.*subdivision"),
    ("buildings: [{id: b1, closures: ['2026-12-31..2026-12-01']}]", "ends before it starts"),
    ("buildings: [{id: b1, closures: ['24/12/2026']}]", "is not YYYY-MM-DD"),
    ("buildings: [{id: b1, rooms: [{id: r1, schedule: 'lundi 08:00-12:00'}]}]", r"rooms\[0\] \(r1\): schedule"),
    ("buildings: [{id: b1, rooms: [{id: r1, comfort_c: 17, setback_c: 18}]}]", "setback_c 18 is above comfort_c 17"),
    ("buildings: [{id: b1, rooms: [{id: r1, comfort_c: 45}]}]", "comfort_c must be a temperature"),
    ("buildings: [{id: b1, rooms: [{id: r1, area_m2: -3}]}]", "area_m2 must be a positive number"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: boiler, friendly_name: a}]}]}]",
     r"devices\[0\] \(d1\): kind must be one of"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv}]}]}]", "needs a friendly_name"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a/#}]}]}]", r"no \+ or #"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a, radiator_w: 0}]}]}]",
     "radiator_w must be a positive"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a,"
     " expected_interval_s: 1.5}]}]}]", "expected_interval_s"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, lorawan: {dev_eui: 1234, type: t}}]}]}]",
     "dev_eui 1234 must be 16 hexadecimal digits"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a},"
     " {id: d1, kind: trv, friendly_name: b}]}]}]", "device d1 is listed twice"),
    ("buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a},"
     " {id: d2, kind: trv, friendly_name: a}]}]}]", "friendly_name a is listed twice"),
    ("buildings: [{id: b1, rooms: [{id: r1}]}, {id: b2, rooms: [{id: r1}]}]", "room r1 is listed twice"),
    ("buildings: [{id: b1, outdoor_device: d1, rooms: [{id: r1, devices: [{id: d1, kind: trv, friendly_name: a}]}]}]",
     "outdoor_device d1 must be a device of kind outdoor"),
    ("lorawan: {device_types: {t1: {family: gas, fields: {index_m3: v}}}}", "family must be one of water, heating"),
    ("lorawan: {device_types: {t1: {family: water, fields: {volume: v}}}}", "unknown water field 'volume'"),
    ("lorawan: {device_types: {t1: {family: heating, fields: {index_m3: v}}}}", "unknown heating field 'index_m3'"),
    ("lorawan: {device_types: {t1: {family: water, fields: {flow_l_per_h: f}}}}", "must map index_m3"),
    ("lorawan: {device_types: {t1: {family: heating, fields: {time: t}}}}", "map only time"),
    ("lorawan: {device_types: {t1: {family: heating, fields: {window_open: {path: w, scale: 2}}}}}", "takes no scale"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: {path: v, scale: 0}}}}}", "non-zero number"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: 'a..b'}}}}", "must be a dotted path"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: v}, alarms: {leak: FLOOD}}}}",
     "'FLOOD' is not one of"),
    ("lorawan: {device_types: {t1: {family: heating, fields: {temperature_c: t}, alarms: {leak: LEAK}}}}",
     "only a water type"),
    ("lorawan: {device_types: {t1: {family: heating, fields: {temperature_c: t}}},"
     " devices: [{dev_eui: '70B3D5FFFE0A1B2C', type: t1, meter: m1}]}", "lists water meters"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: v}}},"
     " devices: [{dev_eui: '70B3D5FFFE0A1B2C', type: t1}]}", "meter must name"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: v}}},"
     " devices: [{dev_eui: '70B3D5FFFE0A1B2C', type: t1, meter: m1}, {dev_eui: '70b3d5fffe0a1b2c', type: t1,"
     " meter: m2}]}", "dev_eui 70b3d5fffe0a1b2c is listed twice"),
    ("lorawan: {device_types: {t1: {family: water, fields: {index_m3: v}}}}\n"
     "buildings: [{id: b1, rooms: [{id: r1, devices: [{id: d1, kind: trv, lorawan: {dev_eui: '70B3D5FFFE0A1B2C',"
     " type: t1}}]}]}]", "type t1 is of family water, not heating"),
    ("buildings: {id: b1}", "'buildings' must be a list"),
]


@pytest.mark.parametrize("text_,reason", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_malformed_sections_are_refused_naming_file_and_entry(tmp_path, text_, reason):
    path = write(tmp_path, text_, "bad.yaml")
    with pytest.raises(RegistryError, match=reason) as exc:
        parse_heating_file(path)
    assert str(exc.value).startswith(str(path))


@pytest.mark.parametrize("change,reason", [
    (("type: axioma-w1, meter", "type: nope-1, meter"), "lorawan.devices\\[0\\] \\(70b3d5fffe0a1b2c\\): LoRaWAN "
                                                       "device type nope-1 is not defined"),
    (('meter: "axw1-000123"', 'meter: "axw1-999"'), "meter axw1-999 is not registered"),
    (("outdoor_device: out-mairie", "outdoor_device: out-autre"), "outdoor_device out-autre is not a registered"),
])
def test_registry_checks_come_before_any_write(tmp_path, sessions, change, reason):
    with sessions() as s:
        with pytest.raises(RegistryError, match=reason):
            load_registry_file(s, write(tmp_path, REGISTRY.replace(*change)))
        # the households of the same file were not written either
        assert s.scalar(select(func.count()).select_from(Household)) == 0
        assert s.scalar(select(func.count()).select_from(Building)) == 0


def test_names_and_radios_of_other_devices_are_refused(tmp_path, sessions):
    loaded(tmp_path, sessions)
    steal_name = ("buildings: [{id: b2, rooms: [{id: r9, devices: [{id: trv-9, kind: trv, "
                  "friendly_name: mairie/conseil/trv_1}]}]}]")
    steal_eui = ("buildings: [{id: b2, rooms: [{id: r9, devices: [{id: hm-9, kind: heat_meter, "
                 "lorawan: {dev_eui: 'A84041000181C6A1', type: milesight-wt101}}]}]}]")
    eui_to_meter = ("lorawan: {devices: [{dev_eui: 'a84041000181c6a1', type: axioma-w1, meter: axw1-000123}]}")
    with sessions() as s:
        for text_, reason in ((steal_name, "already belongs to device trv-0001"),
                              (steal_eui, "dev_eui a84041000181c6a1 already belongs to device hm-0001"),
                              (eui_to_meter, "dev_eui a84041000181c6a1 already belongs to device hm-0001")):
            with pytest.raises(RegistryError, match=reason):
                load_registry_file(s, write(tmp_path, text_, "steal.yaml"))
        assert s.get(Building, "b2") is None


# --- lookups ------------------------------------------------------------------------------------

def test_directory_lookups_any_case_and_new_devices_at_once(tmp_path, sessions):
    directory = HeatingDirectory(sessions, miss_ttl_s=3600)
    with sessions() as s:
        load_registry_file(s, write(tmp_path, "households: [{id: h-0001, meters: [axw1-000123]}]\n", "h.yaml"))
    assert directory.by_friendly_name("mairie/conseil/trv_1") is None       # loaded, nothing there yet
    loaded(tmp_path, sessions)
    trv = HeatingDeviceInfo("trv-0001", HeatingDeviceKind.TRV, "b-mairie", "r-conseil")
    assert directory.by_friendly_name("mairie/conseil/trv_2").device_id == "trv-0002"   # a miss queries at once
    assert directory.by_friendly_name("mairie/conseil/trv_1") is None                   # a remembered miss
    directory.refresh()
    assert directory.by_friendly_name("mairie/conseil/trv_1") == trv
    meter = directory.by_dev_eui("70B3D5FFFE0A1B2C")      # TTS spells it upper-case, ChirpStack lower-case
    assert meter == directory.by_dev_eui("70b3d5fffe0a1b2c")
    assert (meter.dev_eui, meter.type, meter.meter_id, meter.device, meter.mapping.family) == \
        ("70b3d5fffe0a1b2c", "axioma-w1", "axw1-000123", None, "water")
    hm = directory.by_dev_eui(" a84041000181C6A1 ")
    assert hm.device == HeatingDeviceInfo("hm-0001", HeatingDeviceKind.HEAT_METER, "b-mairie", "r-conseil")
    assert hm.meter_id is None and hm.mapping.fields["valve_pct"] == ("valve_opening", 1.0)
    assert directory.by_dev_eui("0000000000000000") is None
    assert directory.by_dev_eui("not-an-eui") is None
    assert directory.by_friendly_name("mairie/inconnu") is None


def test_directory_lookup_by_eui_of_a_device_registered_after_the_first_load(tmp_path, sessions):
    directory = HeatingDirectory(sessions, miss_ttl_s=0)
    assert directory.by_dev_eui("a84041000181c6a1") is None
    loaded(tmp_path, sessions)
    assert directory.by_dev_eui("A84041000181C6A1").device.device_id == "hm-0001"   # one query, no reload
    assert directory.by_dev_eui("70b3d5fffe0a1b2c").meter_id == "axw1-000123"


def test_directory_without_a_readable_registry_says_so(tmp_path):
    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    with broken() as s:
        s.execute(text("DROP TABLE lorawan_devices"))
        s.commit()
    with pytest.raises(RegistryUnavailable):
        HeatingDirectory(broken).by_dev_eui("a84041000181c6a1")


# --- payload mappings ---------------------------------------------------------------------------

WATER = FieldMapping("water", {"index_m3": ("meter.volume", 0.001), "flow_l_per_h": ("flow_m3h", 1000.0),
                               "time": ("ts", 1.0), "battery_pct": ("values.1.v", 1.0)},
                     {"alarms.leak": "LEAK", "burst": "BURST", "backflow": "REVERSE_FLOW"})
HEAT = FieldMapping("heating", {"temperature_c": ("temperature", 1.0), "window_open": ("window", 1.0),
                                "heating": ("motor.on", 1.0), "battery_low": ("low_bat", 1.0)})


def test_mapping_reads_numbers_from_text_flags_both_ways_and_nested_paths():
    obj = {"meter": {"volume": "123456"}, "flow_m3h": 0.012, "ts": "2026-03-14T07:42:10Z",
           "values": [{"v": 1}, {"v": "87.5"}], "alarms": {"leak": "true"}, "burst": 0, "backflow": None}
    assert WATER.extract(obj) == {"index_m3": pytest.approx(123.456), "flow_l_per_h": pytest.approx(12.0),
                                  "time": "2026-03-14T07:42:10Z", "battery_pct": 87.5}
    assert WATER.alarms_of(obj) == ("LEAK",)
    assert WATER.alarms_of({**obj, "burst": True, "backflow": "ON"}) == ("BURST", "LEAK", "REVERSE_FLOW")
    assert HEAT.extract({"temperature": 19.5, "window": "OFF", "motor": {"on": 1}, "low_bat": False}) == \
        {"temperature_c": 19.5, "window_open": False, "heating": True, "battery_low": False}
    assert HEAT.extract({"temperature": None, "window": "yes"}) == {"window_open": True}
    assert HEAT.extract({}) == {}
    epoch = FieldMapping("water", {"index_m3": ("v", 1.0), "time": ("t_ms", 0.001)})
    assert epoch.extract({"v": 1, "t_ms": 1773474130000}) == {"index_m3": 1.0, "time": 1773474130.0}


@pytest.mark.parametrize("mapping,obj,reason", [
    (WATER, {"flow_m3h": 1}, "index_m3: meter.volume is missing or null"),
    (WATER, {"meter": {"volume": None}}, "index_m3: meter.volume is missing or null"),
    (WATER, {"meter": {"volume": "12,5"}}, "index_m3: meter.volume is not a finite number"),
    (WATER, {"meter": {"volume": True}}, "not a finite number: true"),
    (WATER, {"meter": {"volume": "nan"}}, "not a finite number"),
    (WATER, {"meter": 5}, "meter.volume: 'volume' steps into 5"),
    (WATER, {"meter": {"volume": 1}, "values": {"1": {"v": 3}}, "alarms": {"leak": "maybe"}}, "LEAK: alarms.leak must be"),
    (HEAT, {"window": 2}, "window_open: window must be true/false"),
    (HEAT, {"temperature": [19]}, "temperature_c: temperature is not a finite number"),
])
def test_mapping_errors_name_field_and_path(mapping, obj, reason):
    with pytest.raises(MappingError, match=reason) as exc:
        mapping.extract(obj)
        mapping.alarms_of(obj)
    assert exc.value.kind == "mapping_error" and isinstance(exc.value, ValueError)


# --- layout and occupancy -----------------------------------------------------------------------

def test_layout_frames(tmp_path, sessions):
    loaded(tmp_path, sessions)
    with sessions() as s:
        layout = load_heating_layout(s)
    rooms = layout.rooms.set_index("room_id")
    assert list(layout.rooms["room_id"]) == ["r-accueil", "r-conseil"]
    assert rooms.loc["r-conseil", ["comfort_c", "setback_c", "area_m2", "radiator_w"]].tolist() == [20, 16, 60, 2500]
    assert np.isnan(rooms.loc["r-accueil", "radiator_w"]) and np.isnan(rooms.loc["r-accueil", "area_m2"])
    devices = layout.devices.set_index("device_id")
    assert devices.loc["trv-0001", ["kind", "room_id", "building_id", "expected_interval_s"]].tolist() == \
        ["trv", "r-conseil", "b-mairie", 1800]
    assert devices["expected_interval_s"].dtype == np.int64 and len(devices) == 5
    assert layout.buildings.to_dict("records") == [{"building_id": "b-mairie", "name": "Mairie", "commune": "exemple",
                                                    "holidays": "FR", "outdoor_device": "out-mairie"}]
    # building closures reach every room; the room's own only that room
    assert sorted(layout.closures["room_id"].tolist()) == ["r-accueil", "r-accueil", "r-conseil", "r-conseil",
                                                           "r-conseil"]


def _local_day(layout, day: str) -> np.ndarray:
    start = datetime.fromisoformat(day).replace(tzinfo=PARIS).astimezone(timezone.utc)
    return occupancy_schedule(layout, start, 96, "15min", PARIS)


def test_occupancy_follows_schedule_holiday_and_closures(tmp_path, sessions):
    loaded(tmp_path, sessions)
    with sessions() as s:
        layout = load_heating_layout(s)
    conseil, accueil = 1, 0          # row order of layout.rooms
    monday = _local_day(layout, "2026-07-13")          # summer (CEST): 08:00 local is 06:00 UTC
    assert monday.shape == (2, 96)
    assert np.flatnonzero(monday[conseil]).tolist() == list(range(32, 48)) + list(range(54, 72))
    assert np.flatnonzero(monday[accueil]).tolist() == list(range(34, 68))
    assert not _local_day(layout, "2026-07-14").any()   # Fête nationale, a French public holiday (Tuesday)
    assert not _local_day(layout, "2026-12-28").any()   # Monday inside the building's closure
    assert _local_day(layout, "2027-01-04").any()       # the Monday after it
    thursday = _local_day(layout, "2026-11-12")         # the council room's own closure only
    assert not thursday[conseil].any() and thursday[accueil].sum() == 34
    saturday = _local_day(layout, "2026-11-14")
    assert np.flatnonzero(saturday[conseil]).tolist() == list(range(36, 48)) and not saturday[accueil].any()


def _layout(*schedules: str | None, holidays: str | None = None) -> HeatingLayout:
    n = len(schedules)
    rooms = pd.DataFrame({"room_id": [f"r{i}" for i in range(n)], "building_id": "b", "name": None,
                          "comfort_c": 19.0, "setback_c": 16.0, "area_m2": np.nan, "radiator_w": np.nan,
                          "schedule": list(schedules)})
    buildings = pd.DataFrame({"building_id": ["b"], "name": ["B"], "commune": ["c"], "holidays": [holidays],
                              "outdoor_device": [None]})
    return HeatingLayout(buildings=buildings, rooms=rooms, devices=pd.DataFrame())


@pytest.mark.parametrize("day,periods", [("2026-03-29", 92), ("2026-10-25", 100)], ids=["spring", "autumn"])
def test_occupancy_on_dst_change_days_keeps_local_hours(day, periods):
    schedules = ["daily 08:00-12:00", "daily 02:00-03:00", "fri 22:00-06:00; sun 23:00-01:00", None]
    layout = _layout(*schedules)
    start = datetime.fromisoformat(day).replace(tzinfo=PARIS).astimezone(timezone.utc)
    end = (datetime.fromisoformat(day) + timedelta(days=1)).replace(tzinfo=PARIS).astimezone(timezone.utc)
    assert (end - start) == timedelta(minutes=15 * periods)      # a 23 h and a 25 h day
    occ = occupancy_schedule(layout, start, periods, "15min", "Europe/Paris")
    instants = [start + timedelta(minutes=15 * p) for p in range(periods)]
    for row, text_ in enumerate(schedules):                       # the reference: vigie.timewindows itself
        assert occ[row].tolist() == [within(text_, t.astimezone(PARIS)) for t in instants], text_
    assert occ[0].sum() == 16                                     # 08:00-12:00 local, whatever the UTC offset
    # 02:00-03:00 does not exist on the spring day, and happens twice on the autumn one
    assert occ[1].sum() == (0 if day == "2026-03-29" else 8)


def test_occupancy_over_weeks_matches_timewindows_for_many_rooms():
    schedules = ["mon-fri 08:00-12:00; mon-fri 13:30-18:00", "sat,sun 10:00-16:00", "22:00-07:00",
                 "fri-mon 23:30-00:30", "mon 00:00-24:00", ""] * 50
    layout = _layout(*schedules, holidays="FR-57")                 # Alsace-Moselle: Good Friday, 26 December
    start = datetime(2026, 3, 27, 23, 0, tzinfo=timezone.utc)
    periods = 4 * 24 * 10
    occ = occupancy_schedule(layout, start, periods, "15min", PARIS)
    assert occ.shape == (300, periods) and occ.dtype == bool
    instants = [(start + timedelta(minutes=15 * p)).astimezone(PARIS) for p in range(periods)]
    holiday = {"2026-04-03", "2026-04-06"}                        # Vendredi saint (57 only), lundi de Pâques
    for row in range(6):
        expected = [within(schedules[row] or None, t) and t.date().isoformat() not in holiday for t in instants]
        assert occ[row].tolist() == expected, schedules[row]
        assert (occ[row::6] == occ[row]).all()
