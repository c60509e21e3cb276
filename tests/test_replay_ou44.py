"""``vigie replay ou44``: the OU44 data set parsed as it is (units, each room's valve scale decided
from its values, UTC times), published through a real Mosquitto as zigbee2mqtt heating messages
that carry exactly the data, and a registry file of the heating spec's shape."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import services
from vigie.records import HeatingDeviceKind
from vigie.simulators.ou44 import ValveScale, byte_grid_share, detect_valve_scale, load_ou44
from vigie.simulators.replay_ou44 import Occupancy, plan_replay, report_rows, write_registry
from vigie.timewindows import parse_windows

ROOMS = ("e22-508-1", "e22-511-2")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@pytest.fixture(scope="module")
def data_dir(shared_dir) -> Path:
    d = shared_dir / "data" / "ou44-heating"
    if not (d / "df_hpos.csv").exists():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="module")
def data(data_dir):
    return load_ou44(data_dir)


def raw(data_dir: Path, name: str) -> pd.DataFrame:
    """A file read plainly with pandas, for checks independent of the loader."""
    return pd.read_csv(data_dir / f"df_{name}.csv")


# --- parsing ----------------------------------------------------------------------------------

def test_times_are_utc_on_a_regular_minute_grid_through_the_danish_dst_hour(data):
    for frame in (data.outdoor, *(g for _, g in data.rooms.groupby("room"))):
        t = frame["time"]
        assert str(t.dt.tz) == "UTC" and len(t) == 15 * 1440
        assert (t.diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert data.start == pd.Timestamp("2017-03-21 00:00", tz="UTC")
    assert data.end == pd.Timestamp("2017-04-04 23:59", tz="UTC")
    # 02:00–02:59 of 2017-03-26 does not exist in Danish local time; here it is 60 ordinary minutes.
    hour = data.outdoor["time"].between(pd.Timestamp("2017-03-26 02:00", tz="UTC"),
                                        pd.Timestamp("2017-03-26 02:59", tz="UTC"))
    assert hour.sum() == 60


def test_valve_scale_is_decided_per_room_from_the_values(data, data_dir):
    hpos = raw(data_dir, "hpos")
    assert {r.room: r.valve_scale for r in data.room_info} == {"e22-508-1": ValveScale.BYTE,
                                                               "e22-511-2": ValveScale.PERCENT}
    # The evidence: whole numbers up to 255 in one column; 100·k/255 to two decimals in the other.
    assert (hpos["e22-508-1"] % 1 == 0).all() and hpos["e22-508-1"].max() == 255
    assert byte_grid_share(hpos["e22-511-2"].to_numpy()) == 1.0 and hpos["e22-511-2"].max() == 100
    for room in ROOMS:
        rows = data.rooms[data.rooms["room"] == room]
        expected = hpos[room].to_numpy() * (100 / 255 if room == "e22-508-1" else 1)
        np.testing.assert_allclose(rows["valve_pct"].to_numpy(), expected)
        np.testing.assert_array_equal(rows["valve_raw"].to_numpy(), hpos[room].to_numpy())
        assert 0 < rows["valve_pct"].min() and rows["valve_pct"].max() == 100
    # Not the room's name: the columns swapped, the scales follow the values.
    assert detect_valve_scale(hpos["e22-511-2"].to_numpy(), "x") is ValveScale.PERCENT
    assert detect_valve_scale(hpos["e22-508-1"].to_numpy(), "x") is ValveScale.BYTE


@pytest.mark.parametrize("values, expected", [
    ([1, 6, 200, 255], ValveScale.BYTE),
    ([0.39, 0.78, 12.94, 100], ValveScale.PERCENT),
    ([0.5, 33.3, 99.9], ValveScale.PERCENT),
    ([0, 20, 40, 100], "could be bytes or %"),        # ambiguous: whole numbers ≤ 100
    ([12, 256], "outside 0..255"),
    ([-1, 50.5], "outside 0..255"),
    ([101.5, 3], "not whole bytes"),
    ([np.nan], "no valve values"),
])
def test_detect_valve_scale(values, expected):
    if isinstance(expected, ValveScale):
        assert detect_valve_scale(np.array(values, dtype=float), "f") is expected
    else:
        with pytest.raises(ValueError, match=expected):
            detect_valve_scale(np.array(values, dtype=float), "f")


def test_units_and_columns_match_the_files(data, data_dir):
    info = {r.room: r for r in data.room_info}
    assert {k: (v.area_m2, v.volume_m3, v.radiator_w) for k, v in info.items()} == {
        "e22-508-1": (125, 400.0, 3204), "e22-511-2": (139, 444.8, 2689)}
    t, pir, occ = raw(data_dir, "t"), raw(data_dir, "pir"), raw(data_dir, "occ")
    for room in ROOMS:
        rows = data.rooms[data.rooms["room"] == room]
        np.testing.assert_array_equal(rows["temperature_c"].to_numpy(), t[room].to_numpy())
        np.testing.assert_array_equal(rows["pir"].to_numpy(), pir[room].to_numpy())
        # df_occ names its rooms without the leading "e".
        np.testing.assert_array_equal(rows["head_count"].to_numpy(), occ[room[1:]].to_numpy())
        assert 15 < rows["temperature_c"].min() and rows["temperature_c"].max() < 25       # °C, not K or °F
        assert set(rows["pir"].unique()) == {0, 1} and (rows["head_count"] % 1 == 0).all()
    np.testing.assert_array_equal(data.outdoor["temperature_c"].to_numpy(), raw(data_dir, "tamb")["weather"].to_numpy())
    assert 0 < data.outdoor["temperature_c"].min() and data.outdoor["temperature_c"].max() < 30


def _mini(dir_: Path, hpos_rows: list[str], t_rows: list[str] | None = None, times: list[str] | None = None) -> Path:
    """A two-room, three-minute data set of the OU44 layout."""
    times = times or ["2017-03-26 01:59:00", "2017-03-26 02:00:00", "2017-03-26 02:01:00"]
    dir_.mkdir()
    rooms = "a-1", "b-2"
    def csv(name: str, cols: list[str], rows: list[str]) -> None:
        (dir_ / f"df_{name}.csv").write_text("datetime," + ",".join(cols) + "\n"
                                             + "".join(f"{tm},{r}\n" for tm, r in zip(times, rows)))
    csv("t", list(rooms), t_rows or ["20.0,21.0"] * 3)
    csv("hpos", list(rooms), hpos_rows)
    csv("pir", list(rooms), ["0,1"] * 3)
    csv("occ", ["a-1", "b-2"], ["0.0,2.0"] * 3)
    csv("co2", list(rooms), ["400,500"] * 3)
    csv("vav", list(rooms), ["0,10"] * 3)
    csv("tamb", ["weather"], ["5.0"] * 3)
    csv("solrad", ["weather"], ["0.0"] * 3)
    for f, (a, b) in {"areas.txt": (10, 20), "volumes.txt": (30, 60), "radiators.txt": (1000, 2000)}.items():
        (dir_ / f).write_text(f"a-1 {a}\nb-2 {b}\n")
    return dir_


def test_scales_follow_the_values_not_the_names_and_bad_files_are_refused(tmp_path):
    d = load_ou44(_mini(tmp_path / "ok", ["12.94,200.0", "0.39,1.0", "100.0,255.0"]))
    assert {r.room: r.valve_scale for r in d.room_info} == {"a-1": ValveScale.PERCENT, "b-2": ValveScale.BYTE}
    assert d.rooms.loc[d.rooms["room"] == "b-2", "valve_pct"].round(2).tolist() == [78.43, 0.39, 100.0]
    with pytest.raises(ValueError, match="could be bytes or %"):
        load_ou44(_mini(tmp_path / "amb", ["0,20", "40,60", "100,80"]))
    forced = load_ou44(tmp_path / "amb", {"a-1": "percent", "b-2": "byte"})
    assert forced.rooms.loc[forced.rooms["room"] == "b-2", "valve_pct"].round(2).tolist() == [7.84, 23.53, 31.37]
    with pytest.raises(ValueError, match="unknown room"):
        load_ou44(tmp_path / "amb", {"c-3": "byte"})
    with pytest.raises(ValueError, match=r"df_t.csv:3: column 'b-2': not a number"):
        load_ou44(_mini(tmp_path / "nan", ["1,1"] * 3, ["20,21", "20,", "20,21"]))
    with pytest.raises(ValueError, match=r"df_t.csv:4: not on the regular 1-minute grid"):
        load_ou44(_mini(tmp_path / "dst", ["1,1"] * 3, times=["2017-03-26 01:58:00", "2017-03-26 01:59:00",
                                                              "2017-03-26 03:00:00"]))
    with pytest.raises(ValueError, match="outside -40..60"):
        load_ou44(_mini(tmp_path / "kelvin", ["0.39,200"] * 3, ["293.1,294.1"] * 3))
    with pytest.raises(FileNotFoundError):
        load_ou44(tmp_path / "missing")


# --- reporting on change -------------------------------------------------------------------------

def _reference_reports(values: np.ndarray, step: int) -> list[tuple[int, bool]]:
    """Report rows, minute by minute, as a device with attribute reporting would decide them."""
    out, last_sent, prev = [], None, None
    for i, v in enumerate(values.tolist()):
        if prev is None or v != prev:
            out.append((i, True))
            last_sent = i
        elif i - last_sent >= step:
            out.append((i, False))
            last_sent = i
        prev = v
    return out


def test_report_rows_are_changes_plus_a_periodic_refresh():
    rng = np.random.default_rng(5)
    for step in (1, 3, 30):
        values = np.repeat(rng.integers(0, 3, 40), rng.integers(1, 70, 40))
        rows, changed = report_rows(pd.DataFrame({"v": values}), step * 60)
        assert list(zip(rows.tolist(), changed.tolist())) == _reference_reports(values, step)
    with pytest.raises(ValueError, match="whole number of minutes"):
        report_rows(pd.DataFrame({"v": [1.0]}), 90)


# --- through Mosquitto ----------------------------------------------------------------------------

def _changes(series: pd.Series) -> int:
    """Value changes of one published field, the first value included."""
    return int((series != series.shift()).sum())


@pytest.mark.e2e
def test_published_messages_carry_the_data(mosquitto, data, data_dir, tmp_path):
    sub = services.Subscriber(mosquitto.port, topic_filter="zigbee2mqtt-heating/ou44/#")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
        env.update(VIGIE_MQTT_URL=f"mqtt://127.0.0.1:{mosquitto.port}",
                   VIGIE_DATABASE_URL=f"sqlite:///{tmp_path / 'vigie.db'}")
        # --no-register: loading the building is the registry's test (below), this one is the messages'.
        run = subprocess.run([sys.executable, "-m", "vigie.cli", "replay", "ou44", str(data_dir),
                              "--as-fast-as-possible", "--no-register", "--registry-out", str(tmp_path / "ou44.yaml")],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        received = sub.wait_for(report["published"], timeout=60)
    finally:
        sub.close()
    plan = plan_replay(data)
    assert len(received) == report["published"] == len(plan.messages) == sum(report["devices"].values())
    assert report["valve_scales"] == {"e22-508-1": "byte", "e22-511-2": "percent"}
    assert report["base_topic"] == "zigbee2mqtt-heating"      # the heating_topics default's base

    by_topic: dict[str, list[dict]] = {}
    for topic, payload in received:
        by_topic.setdefault(topic, []).append(json.loads(payload))
    doc = yaml.safe_load((tmp_path / "ou44.yaml").read_text())
    devices = {d["friendly_name"]: d for room in doc["buildings"][0]["rooms"] for d in room["devices"]}
    assert set(by_topic) == {f"zigbee2mqtt-heating/{name}" for name in devices}

    grid = data.outdoor["time"]
    hpos, t, pir = raw(data_dir, "hpos"), raw(data_dir, "t"), raw(data_dir, "pir")
    expected = {"ou44/outdoor": pd.DataFrame({"temperature": raw(data_dir, "tamb")["weather"]})}
    for room in ROOMS:
        pct = hpos[room] * 100 / 255 if room == "e22-508-1" else hpos[room]
        expected[f"ou44/{room}/trv"] = pd.DataFrame({"local_temperature": t[room], "pi_heating_demand": pct.round(2)})
        expected[f"ou44/{room}/room_sensor"] = pd.DataFrame({"occupancy": pir[room] > 0})
    for name, want in expected.items():
        msgs = pd.DataFrame(by_topic[f"zigbee2mqtt-heating/{name}"])
        # Only what the data hold: no setpoint, battery or link quality.
        assert set(msgs.columns) == {*want.columns, "last_seen"}, name
        seen = pd.to_datetime(msgs["last_seen"], format="%Y-%m-%dT%H:%M:%S.000Z", utc=True)
        assert seen.is_monotonic_increasing and seen.iloc[0] == grid.iloc[0]
        assert seen.diff().max() <= pd.Timedelta(seconds=plan.refresh_s), name     # periodic refresh
        # The last value reported, carried forward, is the data at every minute.
        carried = msgs.drop(columns="last_seen").set_index(seen).reindex(grid, method="ffill").reset_index(drop=True)
        for col in want.columns:
            if col == "occupancy":
                np.testing.assert_array_equal(carried[col].to_numpy(dtype=bool), want[col].to_numpy())
            else:
                np.testing.assert_allclose(carried[col].to_numpy(float), want[col].to_numpy(float), atol=1e-9)
        # On change: as many change reports as the data's published values change.
        device_id = devices[name]["id"]
        changes = int((want != want.shift()).any(axis=1).sum())
        assert report["changes"][device_id] == changes, name
        assert report["devices"][device_id] == len(msgs)
        assert len(msgs) < changes + len(grid) * 60 / plan.refresh_s + 1
    assert report["changes"]["ou44-e22-508-1-room"] == _changes(pir["e22-508-1"]) == 39


def test_occupancy_rules(data):
    rooms = data.rooms[data.rooms["room"] == "e22-508-1"].reset_index(drop=True)
    by_rule = {rule: plan_replay(data, occupancy=rule).changes["ou44-e22-508-1-room"] for rule in Occupancy}
    assert by_rule[Occupancy.PIR] == _changes(rooms["pir"] > 0)
    assert by_rule[Occupancy.CAMERA] == _changes(rooms["head_count"] > 0)
    assert by_rule[Occupancy.EITHER] == _changes((rooms["pir"] > 0) | (rooms["head_count"] > 0))


# --- registry ---------------------------------------------------------------------------------------

def test_registry_has_the_spec_shape(data, tmp_path):
    replay = plan_replay(data)
    path = tmp_path / "ou44.yaml"
    write_registry(replay, data, path)
    text = path.read_text()
    assert "observed" in text and "occupancy" in text    # the comments say how the analytics are run
    doc = yaml.safe_load(text)
    assert list(doc) == ["buildings"] and len(doc["buildings"]) == 1
    b = doc["buildings"][0]
    assert set(b) <= {"id", "name", "commune", "holidays", "closures", "outdoor_device", "rooms"}
    assert b["id"] == "ou44" and b["holidays"] == "DK" and ID.match(b["id"])
    assert [r["area_m2"] for r in b["rooms"]] == [125, 139]
    kinds: dict[str, str] = {}
    for room in b["rooms"]:
        assert set(room) <= {"id", "name", "area_m2", "comfort_c", "setback_c", "schedule", "closures", "devices"}
        assert ID.match(room["id"]) and room["setback_c"] < room["comfort_c"]
        assert parse_windows(room["schedule"])
        for d in room["devices"]:
            assert set(d) <= {"id", "kind", "friendly_name", "radiator_w", "expected_interval_s", "lorawan"}
            assert ID.match(d["id"]) and d["id"] not in kinds
            kinds[d["id"]] = d["kind"]
            assert d["kind"] in {str(k) for k in HeatingDeviceKind}
            assert ("radiator_w" in d) == (d["kind"] == "trv")
            assert d["friendly_name"] in {m.topic.removeprefix("zigbee2mqtt-heating/") for m in replay.messages}
        trv = [d for d in room["devices"] if d["kind"] == "trv"]
        assert len(trv) == 1 and [d["kind"] for d in room["devices"]].count("room_sensor") == 1
    assert [d["radiator_w"] for r in b["rooms"] for d in r["devices"] if d["kind"] == "trv"] == [3204, 2689]
    assert kinds[b["outdoor_device"]] == "outdoor" and list(kinds.values()).count("outdoor") == 1


def test_registry_loads_into_the_heating_directory(data, tmp_path):
    """Once the heating registry (part R) exists: the file loads, and the TRV's friendly name finds it."""
    heating_registry = pytest.importorskip("vigie.heating_registry")
    from vigie.db import make_engine, make_sessionmaker

    path = tmp_path / "ou44.yaml"
    write_registry(plan_replay(data), data, path)
    url = f"sqlite:///{tmp_path / 'vigie.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}, "VIGIE_DATABASE_URL": url}
    run = subprocess.run([sys.executable, "-m", "vigie.cli", "registry", "load", str(path)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    sessions = make_sessionmaker(make_engine(url))
    info = heating_registry.HeatingDirectory(sessions).by_friendly_name("ou44/e22-508-1/trv")
    assert (info.device_id, info.kind, info.building_id, info.room_id) == (
        "ou44-e22-508-1-trv", HeatingDeviceKind.TRV, "ou44", "ou44-e22-508-1")
