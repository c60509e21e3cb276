"""Home sensors in the registry: YAML and CSV loading, refusals, and the decoder's lookup."""

from __future__ import annotations

import pytest

from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.decoders.zigbee2mqtt import SensorInfo
from vigie.records import Room, SensorKind
from vigie.registry import RegistryError, load_registry_file
from vigie.sensors import (DEFAULT_EXPECTED_INTERVAL_S, RegistryUnavailable, Sensor, SensorDirectory,
                           load_sensors_file, parse_sensors_file)

YAML = """
households:
  - id: home-0001
    residents: [{id: r-1, name: Test Person, email: t@example.org}]
    sensors:
      - {id: s-aa01, friendly_name: home-0001/bathroom/door, room: bathroom, kind: contact, expected_interval_s: 3600}
      - {id: s-aa02, friendly_name: home-0001/bedroom/bed, room: Bedroom, kind: presence}
  - id: home-0002
"""


@pytest.fixture
def sessions(sqlite_url):
    return make_sessionmaker(make_engine(sqlite_url))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_sensors_load_after_their_households(tmp_path, sessions):
    path = write(tmp_path, "r.yaml", YAML)
    with sessions() as s:
        load_registry_file(s, path)
        assert load_sensors_file(s, path) == {"sensors": 2}
        bed = s.get(Sensor, "s-aa02")
        assert (bed.household_id, bed.room, bed.kind, bed.expected_interval_s) == \
            ("home-0001", Room.BEDROOM, SensorKind.PRESENCE, DEFAULT_EXPECTED_INTERVAL_S)
        # an upsert: a second load moves a sensor and changes its kind
        moved = write(tmp_path, "m.csv", "household_id,sensor_id,friendly_name,room,kind,expected_interval_s\n"
                                         "home-0002,s-aa02,home-0002/chair,living_room,presence,600\n")
        load_sensors_file(s, moved)
        s.expire_all()
        assert (s.get(Sensor, "s-aa02").household_id, s.get(Sensor, "s-aa02").friendly_name) == \
            ("home-0002", "home-0002/chair")


@pytest.mark.parametrize("text,reason", [
    ("households:\n  - id: h\n    sensors: [{id: s 1, friendly_name: a, room: kitchen, kind: motion}]\n", "sensor id"),
    ("households:\n  - id: h\n    sensors: [{id: s1, room: kitchen, kind: motion}]\n", "friendly_name is missing"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a/#, room: kitchen, kind: motion}]\n", r"no \+ or #"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a/set, room: kitchen, kind: motion}]\n", "/set"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a, room: garage, kind: motion}]\n", "room must be"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a, room: kitchen, kind: pir}]\n", "kind must be"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a, room: kitchen, kind: motion,"
     " expected_interval_s: -5}]\n", "expected_interval_s"),
    ("households:\n  - id: h\n    sensors: [{id: s1, friendly_name: a, room: kitchen, kind: motion},"
     " {id: s2, friendly_name: a, room: kitchen, kind: motion}]\n", "same friendly_name"),
    ("households:\n  - id: h\n    sensors: {id: s1}\n", "must be a list"),
    ("households: [\n", "not valid YAML"),
])
def test_malformed_files_are_refused_with_the_entry(tmp_path, text, reason):
    with pytest.raises(RegistryError, match=reason):
        parse_sensors_file(write(tmp_path, "bad.yaml", text))


def test_csv_header_and_unknown_household_and_taken_name(tmp_path, sessions):
    with pytest.raises(RegistryError, match="missing kind"):
        parse_sensors_file(write(tmp_path, "a.csv", "household_id,sensor_id,friendly_name,room\n"))
    with sessions() as s:
        load_registry_file(s, write(tmp_path, "r.yaml", YAML))
        load_sensors_file(s, write(tmp_path, "r2.yaml", YAML))
        with pytest.raises(RegistryError, match="household home-0009 is not registered"):
            load_sensors_file(s, write(tmp_path, "b.csv", "household_id,sensor_id,friendly_name,room,kind\n"
                                                         "home-0009,s-1,x,kitchen,motion\n"))
        with pytest.raises(RegistryError, match="already belongs to sensor s-aa01"):
            load_sensors_file(s, write(tmp_path, "c.csv", "household_id,sensor_id,friendly_name,room,kind\n"
                                                         "home-0002,s-2,home-0001/bathroom/door,bathroom,contact\n"))
        assert s.get(Sensor, "s-2") is None


def test_directory_knows_new_sensors_at_once_and_caches_misses(tmp_path, sessions):
    directory = SensorDirectory(sessions, miss_ttl_s=3600)
    with sessions() as s:
        load_registry_file(s, write(tmp_path, "r.yaml", "households: [{id: home-0001}, {id: home-0002}]\n"))
    assert directory("home-0001/bathroom/door") is None       # loaded, nothing registered yet
    with sessions() as s:
        load_sensors_file(s, write(tmp_path, "r2.yaml", YAML))
    assert directory("home-0001/bedroom/bed") == SensorInfo("s-aa02", SensorKind.PRESENCE, Room.BEDROOM, "home-0001")
    assert directory("home-0001/bathroom/door") is None       # a remembered miss
    directory.refresh()
    assert directory("home-0001/bathroom/door").sensor_id == "s-aa01"


def test_directory_without_a_readable_registry_says_so(tmp_path):
    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    from sqlalchemy import text
    with broken() as s:
        s.execute(text("DROP TABLE home_sensors"))
        s.commit()
    with pytest.raises(RegistryUnavailable):
        SensorDirectory(broken)("anything")


def test_registry_load_takes_households_and_their_sensors_in_one_file(tmp_path, sqlite_url):
    from vigie.db import make_engine, make_sessionmaker
    from vigie.registry import load_registry_file
    from vigie.sensors import Sensor

    path = tmp_path / "registry.yaml"
    path.write_text("""
households:
  - id: h-1
    residents: [{id: p-1, name: Jeanne}]
    sensors:
      - {id: s-1, friendly_name: home-1/bathroom/pir, room: bathroom, kind: motion}
      - {id: s-2, friendly_name: home-1/entrance/door, room: entrance, kind: contact}
""", encoding="utf-8")
    sm = make_sessionmaker(make_engine(sqlite_url))
    with sm() as s:
        counts = load_registry_file(s, path)
    assert counts["households"] == 1 and counts["sensors"] == 2
    with sm() as s:
        assert {x.id: (x.household_id, x.room) for x in s.query(Sensor)} == {
            "s-1": ("h-1", "bathroom"), "s-2": ("h-1", "entrance")}
    csv_path = tmp_path / "sensors.csv"
    csv_path.write_text("household_id,sensor_id,friendly_name,room,kind\nh-1,s-3,home-1/kitchen/pir,kitchen,motion\n",
                        encoding="utf-8")
    with sm() as s:
        assert load_registry_file(s, csv_path) == {"sensors": 1}
