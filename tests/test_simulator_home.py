"""Home simulator: routines, anomalies as their ground truth says, decodable messages, publishing."""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import services

from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, Zigbee2MqttDecoder
from vigie.records import Room
from vigie.simulators.home import (OCCUPANCY_TIMEOUT_S, BatteryDying, Decline, Fall, HomeSimConfig, NightWandering,
                                   NoWakeUp, parse_anomaly_spec, simulate_homes, write_home_registry)
from vigie.simulators.publish import publish_messages

PARIS = ZoneInfo("Europe/Paris")
START = date(2026, 10, 12)  # three weeks holding the 2026-10-25 fall-back
ANOMALIES = [
    Fall(0, datetime(2026, 10, 20, 10, 0), minutes=90),
    NoWakeUp(1, date(2026, 10, 21), minutes=150),
    NightWandering(2, datetime(2026, 10, 22, 2, 30), minutes=40),
    Decline(3, date(2026, 10, 19), days=7, final_level=0.35),
    BatteryDying(4, "bathroom/motion", datetime(2026, 10, 26, 9, 0), days=5),
]


@pytest.fixture(scope="module")
def normal():
    return simulate_homes(HomeSimConfig(homes=12, days=21, start=START, seed=5))


@pytest.fixture(scope="module")
def anomalous():
    return simulate_homes(HomeSimConfig(homes=6, days=21, start=START, seed=5, anomalies=ANOMALIES))


_SERIES: dict[int, dict] = {}


def by_sensor(result):
    """sensor id → (SimSensor, [(time, value)]), computed once per result."""
    if id(result) in _SERIES:
        return _SERIES[id(result)]
    sensors = {s.sensor_id: s for h in result.homes for s in h.sensors}
    series = defaultdict(list)
    for e in result.events():
        series[e.sensor_id].append((e.time, e.value))
    _SERIES[id(result)] = {sid: (sensors[sid], series[sid]) for sid in sensors}
    return _SERIES[id(result)]


def rises(points):
    """Times a binary series goes 0 → 1 (the first report counts when it is 1)."""
    out, prev = [], 0.0
    for t, v in points:
        if v > 0 and prev == 0:
            out.append(t)
        prev = v
    return out


def home_series(result, index):
    return {s.spec.key: pts for sid, (s, pts) in by_sensor(result).items()
            if s.friendly_name.startswith(result.homes[index].home_id + "/")}


def wake_times(bed):
    """Per local day, the morning get-up: bed → free for at least 2 h, between 04:30 and 13:00."""
    changes = [(t, v) for i, (t, v) in enumerate(bed) if i == 0 or v != bed[i - 1][1]]  # heartbeats repeat
    out = {}
    for (t, v), nxt in zip(changes, changes[1:] + [(None, None)]):
        local = t.astimezone(PARIS)
        if v == 0 and 4.5 <= local.hour + local.minute / 60 < 13 and (nxt[0] is None or nxt[0] - t > timedelta(hours=2)):
            out.setdefault(local.date(), local.hour * 60 + local.minute)
    return out


# --- routines -----------------------------------------------------------------------------

def test_wake_up_follows_each_persona_with_a_day_to_day_spread(normal):
    for home in normal.homes:
        wakes = wake_times(home_series(normal, home.index)["bedroom/bed"])
        assert len(wakes) >= 19, home.home_id
        weekdays = [m for d, m in wakes.items() if d.weekday() < 5]
        assert abs(statistics.mean(weekdays) - home.persona.wake_mean) < 20
        assert 5 < statistics.stdev(weekdays) < 45
        assert all(300 <= m <= 660 for m in wakes.values())


def test_weekends_start_later_on_average(normal):
    shift = []
    for home in normal.homes:
        wakes = wake_times(home_series(normal, home.index)["bedroom/bed"])
        shift.append(statistics.mean(m for d, m in wakes.items() if d.weekday() >= 5)
                     - statistics.mean(m for d, m in wakes.items() if d.weekday() < 5))
    assert statistics.mean(shift) > 10


def test_night_bathroom_visits(normal):
    nights = 0
    for home in normal.homes:
        visits = [t for t in rises(home_series(normal, home.index)["bathroom/motion"])
                  if 1 <= t.astimezone(PARIS).hour < 5]
        nights += len(visits)
    per_night = nights / (len(normal.homes) * 21)
    assert 0.1 < per_night < 1.5


def test_outings_some_days_and_an_empty_home_meanwhile(normal):
    days_out, total = 0, 0
    for home in normal.homes:
        s = home_series(normal, home.index)
        opens = rises(s["entrance/door"])
        motion = sorted(t for key, pts in s.items() if key.endswith("/motion") for t in rises(pts))
        out_days = set()
        for a, b in zip(opens, opens[1:]):
            if b - a >= timedelta(minutes=55) and 8 <= a.astimezone(PARIS).hour < 18:
                inside = [t for t in motion if a + timedelta(minutes=2) < t < b - timedelta(seconds=1)]
                if not inside:
                    out_days.add(a.astimezone(PARIS).date())
        days_out += len(out_days)
        total += 21
    assert 0.15 < days_out / total < 0.75


def test_meals_use_the_kettle_and_the_fridge(normal):
    for home in normal.homes:
        s = home_series(normal, home.index)
        kettle = [(t, v) for t, v in s["kitchen/kettle"] if v > 0]
        assert all(1700 < v < 2300 for _, v in kettle)
        assert len(rises(s["kitchen/kettle"])) >= 15
        assert len(rises(s["kitchen/fridge"])) >= 21 * 3


def test_every_sensor_reports_within_its_heartbeat(normal):
    for sid, (s, pts) in by_sensor(normal).items():
        gaps = [(b - a).total_seconds() for (a, _), (b, _) in zip(pts, pts[1:])]
        assert max(gaps) < 3060, s.friendly_name


def test_same_seed_same_homes():
    a = simulate_homes(HomeSimConfig(homes=2, days=2, start=START, seed=9))
    b = simulate_homes(HomeSimConfig(homes=2, days=2, start=START, seed=9))
    c = simulate_homes(HomeSimConfig(homes=2, days=2, start=START, seed=10))
    assert list(a.messages()) == list(b.messages()) != list(c.messages())


# --- anomalies ----------------------------------------------------------------------------

def truth(result, kind):
    [t] = [x for x in result.truths if x.kind == kind]
    return t


def activity(result, index, start, end):
    """Every sign of the resident in (start, end): motion detections (value 1, not the clears
    zigbee2mqtt sends 90 s later) and other sensors' value changes."""
    found = []
    for key, pts in home_series(result, index).items():
        prev = None
        for t, v in pts:
            motion = key.endswith("/motion")
            if start < t < end and ((motion and v > 0) or (not motion and prev is not None and v != prev)):
                found.append((t, key, v))
            prev = v
    return sorted(found)


def test_fall_no_movement_after_entering_the_bathroom(anomalous):
    f = truth(anomalous, "fall")
    assert f.home == "home-0001" and f.start == datetime(2026, 10, 20, 8, 0, tzinfo=timezone.utc)
    assert f.end - f.start == timedelta(minutes=90)
    s = home_series(anomalous, 0)
    entry = [t for t, v in s["bathroom/motion"] if v > 0 and f.start <= t < f.start + timedelta(seconds=5)]
    assert len(entry) == 1
    door = [(t, v) for t, v in s["bathroom/door"] if f.start <= t < f.end]
    assert door and door[-1][1] == 0.0  # closed behind the resident
    quiet_from = f.start + timedelta(seconds=OCCUPANCY_TIMEOUT_S + 5)
    assert activity(anomalous, 0, f.start + timedelta(seconds=15), f.end) == []
    assert not [t for t, v in s["bathroom/motion"] if v > 0 and quiet_from < t < f.end]
    assert activity(anomalous, 0, f.end, f.end + timedelta(minutes=15))


def test_no_wakeup_stays_in_bed_without_motion(anomalous):
    nw = truth(anomalous, "no_wakeup")
    assert nw.home == "home-0002" and nw.start.astimezone(PARIS).date() == date(2026, 10, 21)
    assert nw.end - nw.start == timedelta(minutes=150)
    bed = home_series(anomalous, 1)["bedroom/bed"]
    assert [v for t, v in bed if t <= nw.start][-1] == 1.0
    assert activity(anomalous, 1, nw.start, nw.end) == []
    first = activity(anomalous, 1, nw.end, nw.end + timedelta(hours=1))[0][0]
    assert first - nw.end < timedelta(minutes=2)
    # the planned wake-up is when that day would have begun: other days begin near it
    others = wake_times(bed)
    local = nw.start.astimezone(PARIS)
    assert abs(statistics.median(others.values()) - (local.hour * 60 + local.minute)) < 120


def test_night_wandering_door_opened_at_night_and_no_one_home(anomalous):
    w = truth(anomalous, "night_wandering")
    assert w.home == "home-0003"
    door = home_series(anomalous, 2)["entrance/door"]
    opened = rises(door)
    assert w.start in opened and w.end in opened
    assert 0 <= w.start.astimezone(PARIS).hour < 5
    assert w.end - w.start > timedelta(minutes=40)
    inside = [a for a in activity(anomalous, 2, w.start + timedelta(seconds=10), w.end)
              if not (a[1] == "entrance/door" or (a[1] == "entrance/motion" and a[2] == 0))]
    assert inside == []


def test_decline_lowers_daily_activity(anomalous, normal):
    d = truth(anomalous, "decline")
    assert d.home == "home-0004" and d.start.astimezone(PARIS).date() == date(2026, 10, 19)
    assert d.end.astimezone(PARIS).date() == date(2026, 10, 26)
    per_day = defaultdict(int)
    for key, pts in home_series(anomalous, 3).items():
        if key.endswith("/motion"):
            for t, v in pts:
                if v > 0:
                    per_day[t.astimezone(PARIS).date()] += 1
    before = statistics.mean(per_day[START + timedelta(days=i)] for i in range(7))
    after = statistics.mean(per_day[d.end.astimezone(PARIS).date() + timedelta(days=i)] for i in range(5))
    assert after < 0.6 * before
    # the same home without the anomaly keeps its level
    plain = simulate_homes(HomeSimConfig(homes=6, days=21, start=START, seed=5))
    _SERIES.pop(id(plain), None)
    steady = defaultdict(int)
    for key, pts in home_series(plain, 3).items():
        if key.endswith("/motion"):
            for t, v in pts:
                if v > 0:
                    steady[t.astimezone(PARIS).date()] += 1
    assert statistics.mean(steady[START + timedelta(days=14 + i)] for i in range(5)) > 0.8 * before


def test_battery_dies_then_silence_then_offline(anomalous):
    b = truth(anomalous, "battery_dying")
    assert b.home == "home-0005" and b.end is None
    assert b.start == datetime(2026, 10, 26, 8, 0, tzinfo=timezone.utc)
    sid = b.detail["sensor_id"]
    events = [e for e in anomalous.events() if e.sensor_id == sid]
    assert events[-1].time < b.start and events[-1].time.isoformat().startswith(b.detail["last_message"][:19])
    decline_start = datetime.fromisoformat(b.detail["decline_start"])
    batteries = [e.battery_pct for e in events if e.time >= decline_start]
    assert batteries == sorted(batteries, reverse=True) and batteries[-1] <= 5
    assert events[0].battery_pct >= 70
    offline = [a for a in anomalous.availability() if a.device_id == sid and not a.online]
    assert [a.time for a in offline] == [datetime.fromisoformat(b.detail["offline_at"])]
    assert offline[0].time == events[-1].time + timedelta(hours=25)


def test_ground_truth_file(anomalous, tmp_path):
    path = tmp_path / "truth.jsonl"
    anomalous.write_ground_truth(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["kind"] for r in rows) == ["battery_dying", "decline", "fall", "night_wandering", "no_wakeup"]
    assert all(set(r) == {"home", "kind", "start", "end", "detail"} and r["start"].endswith("Z") for r in rows)


def test_anomaly_specs_and_refusals():
    assert parse_anomaly_spec("fall:3:2026-10-20T10:00,90") == Fall(3, datetime(2026, 10, 20, 10, 0), 90.0)
    assert parse_anomaly_spec("no-wakeup:home-0002:2026-10-21") == NoWakeUp("home-0002", date(2026, 10, 21))
    assert parse_anomaly_spec("decline:1:2026-10-19,7,0.5") == Decline(1, date(2026, 10, 19), 7, 0.5)
    assert parse_anomaly_spec("battery:0:2026-10-25T08:00,kitchen/fridge") == \
        BatteryDying(0, "kitchen/fridge", datetime(2026, 10, 25, 8, 0))
    for bad, reason in [("trip:0:2026-10-20", "expected one of"), ("fall:0:yesterday", "ISO 8601"),
                        ("fall:0:2026-10-20T10:00,-5", "MINUTES"), ("battery:0:2026-10-25T08:00,garage", "SENSOR")]:
        with pytest.raises(ValueError, match=reason):
            parse_anomaly_spec(bad)
    for anomaly, reason in [(Fall(9, datetime(2026, 10, 13, 10, 0)), "position"),
                            (Fall(0, datetime(2027, 1, 1, 10, 0)), "outside"),
                            (NoWakeUp(0, date(2026, 1, 1)), "outside")]:
        with pytest.raises(ValueError, match=reason):
            simulate_homes(HomeSimConfig(homes=2, days=3, start=START, anomalies=[anomaly]))


# --- messages -----------------------------------------------------------------------------

def test_every_message_decodes_to_the_simulated_events(anomalous):
    decoder = Zigbee2MqttDecoder(anomalous.sensor_infos().get)
    events, availability = [], []
    for m in anomalous.messages():
        assert m.topic.startswith("zigbee2mqtt/home-")
        out = decoder.decode(m.topic, m.payload, m.time)
        if isinstance(out, DeviceAvailability):
            availability.append(out)
            assert m.retain
        else:
            assert len(out) == 1 and not m.retain
            events.extend(out)
    assert events == list(anomalous.events())
    assert availability == list(anomalous.availability())
    assert len(events) + len(availability) == len(anomalous)


def test_payloads_look_like_zigbee2mqtt(anomalous):
    seen = {}
    for m in anomalous.messages():
        if m.topic.endswith("/availability") or m.topic.endswith("/bridge/state"):
            continue
        seen.setdefault(m.topic.split("/", 2)[2], json.loads(m.payload))
    assert set(seen["bathroom/door"]) >= {"contact", "battery", "voltage", "linkquality", "last_seen"}
    assert set(seen["bedroom/bed"]) >= {"occupancy", "work_state", "battery"}
    assert seen["living_room/chair"]["pressure_state"] in ("sit", "none")
    assert set(seen["kitchen/kettle"]) >= {"state", "power", "energy", "voltage", "current"}
    assert "battery" not in seen["kitchen/kettle"]
    assert isinstance(seen["bedroom/motion"]["occupancy"], bool)
    assert datetime.strptime(seen["bedroom/motion"]["last_seen"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_registry_file_holds_households_people_and_sensors(anomalous, tmp_path, sqlite_url):
    from vigie.db import make_engine, make_sessionmaker
    from vigie.registry import CaregiverLink, Household, load_registry_file
    from vigie.sensors import Sensor, SensorDirectory, load_sensors_file

    path = tmp_path / "homes.yaml"
    write_home_registry(anomalous, path)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    with sessions() as s:
        assert load_registry_file(s, path)["households"] == 6
        assert load_sensors_file(s, path) == {"sensors": 72}
        assert s.query(CaregiverLink).count() == 12 and s.query(Household).count() == 6
        assert {x.room for x in s.query(Sensor)} == set(Room) - {Room.OTHER}
    directory = SensorDirectory(sessions)
    assert all(directory(name) == info for name, info in anomalous.sensor_infos().items())
    text = path.read_text()
    assert "@example.org" in text and text.count("s-") >= 72


# --- publishing ---------------------------------------------------------------------------

def test_publish_a_small_fleet_to_mosquitto(mosquitto):
    result = simulate_homes(HomeSimConfig(homes=3, days=2, start=START, seed=1,
                                          anomalies=[Fall(1, datetime(2026, 10, 13, 15, 0), 60)]))
    messages = list(result.messages())
    sub = services.Subscriber(mosquitto.port, topic_filter="zigbee2mqtt/#")
    calls = []
    try:
        n = publish_messages(iter(messages), f"mqtt://127.0.0.1:{mosquitto.port}",
                             progress=lambda sent, acked: calls.append((sent, acked)))
        got = sub.wait_for(len(messages), timeout=60)
        time.sleep(0.3)
        got = list(sub.messages)
    finally:
        sub.close()
    assert n == len(messages) > 2000
    assert calls[-1] == (n, n)
    assert sorted(got) == sorted((m.topic, m.payload) for m in messages)
