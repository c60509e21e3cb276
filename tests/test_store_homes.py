"""The assisted-living schema (vigie.store.homes) on both stores (a real influxd, the embedded one):
round trip of simulated homes, retention policy, duplicates, two reports of one sensor within a
second, availability changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo
from vigie.simulators.home import HomeSimConfig, simulate_homes

from vigie.records import Room, SensorEvent, SensorKind
from vigie.store.homes import (
    AVAILABILITY,
    EVENT,
    HomeSensors,
    event_line,
    last_availability,
    read_events,
    write_availability,
    write_events,
)

# Recent days: the events policy (90 days) refuses older points.
TODAY = datetime.now(timezone.utc).date()
RECENT = datetime.combine(TODAY - timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim():
    return simulate_homes(HomeSimConfig(homes=3, days=2, start=TODAY - timedelta(days=3), seed=4))


def expected_frame(result) -> pd.DataFrame:
    infos = {i.sensor_id: i for i in result.sensor_infos().values()}
    evs = list(result.events())
    return pd.DataFrame({
        "home_id": [infos[e.sensor_id].home_id for e in evs], "sensor_id": [e.sensor_id for e in evs],
        "room": [str(infos[e.sensor_id].room) for e in evs], "kind": [str(e.kind) for e in evs],
        "time": np.array([int(e.time.timestamp()) for e in evs], np.int64),
        "value": np.array([e.value for e in evs], np.float64)})


def plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.astype({c: str for c in ("home_id", "sensor_id", "room", "kind")})
    return out.sort_values(["sensor_id", "time"], kind="stable").reset_index(drop=True)


def count(store, policy: str | None) -> int:
    series = store.query_json(f"SELECT count(value) FROM {store.measurement(EVENT, policy)}")
    return int(series[0]["values"][0][1]) if series else 0


def test_round_trip_equals_the_simulated_events(any_store, sim):
    sensors = HomeSensors.of(sim.sensor_infos().values())
    n = write_events(any_store, sim.events(), sensors)
    assert n == sum(1 for _ in sim.events())
    got = read_events(any_store, sim.period_start, sim.period_end, sensors)
    assert list(got.columns) == ["home_id", "sensor_id", "room", "kind", "time", "value"]
    for c in ("home_id", "sensor_id", "room", "kind"):
        assert isinstance(got[c].dtype, pd.CategoricalDtype)
    assert got["time"].dtype == np.int64 and got["value"].dtype == np.float64
    assert got["time"].is_monotonic_increasing
    pd.testing.assert_frame_equal(plain(got), plain(expected_frame(sim)))

    # The events policy holds them, the raw (default) one nothing; a home filter; a period cut.
    assert count(any_store, "vigie_events") == n
    assert count(any_store, None) == 0
    one = read_events(any_store, sim.period_start, sim.period_end, sensors, homes=["home-0002"])
    assert set(one["home_id"].astype(str)) == {"home-0002"}
    half = sim.period_start + timedelta(hours=20)
    first = read_events(any_store, sim.period_start, half, sensors)
    second = read_events(any_store, half, sim.period_end, sensors)
    assert len(first) + len(second) == n and first["time"].max() < half.timestamp() <= second["time"].min()

    # Written again (a re-delivered batch): still one point per report.
    write_events(any_store, sim.events(), sensors)
    assert count(any_store, "vigie_events") == n


def test_two_changes_within_a_second_both_survive(any_store):
    t = RECENT + timedelta(hours=8, milliseconds=200)
    sensors = HomeSensors.of([SensorInfo("s-door", SensorKind.CONTACT, Room.ENTRANCE, "h1")])
    opened = SensorEvent("s-door", t, SensorKind.CONTACT, 1.0, battery_pct=87.0, link_quality=120.0)
    shut = SensorEvent("s-door", t + timedelta(milliseconds=500), SensorKind.CONTACT, 0.0)
    write_events(any_store, [opened, shut, opened], sensors)
    got = read_events(any_store, t - timedelta(seconds=1), t + timedelta(seconds=1), sensors)
    assert got["value"].tolist() == [1.0, 0.0]               # in order, neither lost
    assert got["time"].tolist() == [int(t.timestamp())] * 2
    assert got["room"].astype(str).tolist() == ["entrance"] * 2
    line = event_line(opened, "h1")
    assert line.startswith("home_event,home_id=h1,kind=contact,sensor_id=s-door ")
    assert "battery_pct=87" in line and line.endswith(f" {int(t.timestamp()) * 1000 + 200}")


def test_bad_reports_are_refused_and_nothing_is_written(any_store, sim):
    sensors = HomeSensors.of(sim.sensor_infos().values())
    evs = list(sim.events())[:10]
    stranger = SensorEvent("s-unknown", evs[0].time, SensorKind.MOTION, 1.0)
    with pytest.raises(ValueError, match="s-unknown"):
        write_events(any_store, evs + [stranger], sensors)
    with pytest.raises(ValueError, match="finite"):
        event_line(SensorEvent(evs[0].sensor_id, evs[0].time, SensorKind.POWER, float("nan")), "home-0001")
    assert count(any_store, "vigie_events") == 0
    empty = read_events(any_store, sim.period_start, sim.period_end, sensors)
    assert empty.empty and list(empty.columns) == ["home_id", "sensor_id", "room", "kind", "time", "value"]


def test_room_of_a_sensor_gone_from_the_registry_is_other(any_store, sim):
    infos = list(sim.sensor_infos().values())
    write_events(any_store, sim.events(), HomeSensors.of(infos))
    gone = infos[0].sensor_id
    got = read_events(any_store, sim.period_start, sim.period_end, HomeSensors.of(infos[1:]))
    assert set(got.loc[got["sensor_id"] == gone, "room"].astype(str)) == {"other"}


def test_availability_is_stored_on_change_only(any_store):
    t = RECENT - timedelta(days=2)
    online = DeviceAvailability("sensor", "s-door", True, t, home_id="h1")
    assert write_availability(any_store, [online]) == 1
    # The retained message again at a reconnect, then a real change, then the bridge.
    again = DeviceAvailability("sensor", "s-door", True, t + timedelta(hours=1), home_id="h1")
    off = DeviceAvailability("sensor", "s-door", False, t + timedelta(hours=30), home_id="h1")
    bridge = DeviceAvailability("bridge", "zigbee2mqtt/h1", True, t)
    assert write_availability(any_store, [again, off, bridge]) == 2
    assert last_availability(any_store, ["s-door", "zigbee2mqtt/h1", "s-none"]) == {
        "s-door": False, "zigbee2mqtt/h1": True}
    m = any_store.measurement(AVAILABILITY, "vigie_events")
    assert any_store.query_json(f"SELECT count(online) FROM {m}")[0]["values"][0][1] == 3
