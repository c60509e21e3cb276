"""DAIAD trial replay: the real files read in full (litres → m³, DST, ids), bad rows reported,
and a week of one household published to a real Mosquitto."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigie.db import make_engine, make_sessionmaker
from vigie.registry import Meter, upsert_rows
from vigie.simulators.replay_daiad import DaiadFormatError, daiad_registry_rows, load_daiad, replay_daiad

from services import Subscriber

HOUSEHOLD = "swm_trialA_0da96e4d.csv"
HEADER = "user key;datetime;meter reading;diff\n"


@pytest.fixture(scope="module")
def daiad_files(shared_dir) -> list[Path]:
    files = sorted((shared_dir / "data/daiad-water").glob("swm_trialA_*.csv"))
    if not files:
        pytest.skip("DAIAD files not found under shared/data/daiad-water")
    return files


@pytest.fixture(scope="module")
def loaded(daiad_files):
    return load_daiad(daiad_files)


def raw_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=";"))[1:]


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_every_row_is_a_reading_with_the_full_user_key_and_m3(daiad_files, loaded):
    raw = {p.name: raw_rows(p) for p in daiad_files}
    assert loaded.rows_read == sum(len(r) for r in raw.values()) == len(loaded.readings)
    assert loaded.rejected == [] and loaded.duplicates == 0
    r = loaded.readings
    per_file = r.groupby("file").size()
    for name, rows in raw.items():
        assert per_file[name] == len(rows)
        keys = {row[0] for row in rows}
        assert len(keys) == 1
        key = keys.pop()
        assert len(key) == 36 and name == f"swm_trialA_{key[:8]}.csv"
        assert set(r.loc[r["file"] == name, "meter_id"]) == {key}
    # Litres in the file, m³ in the readings, row by row.
    mine = r[r["file"] == HOUSEHOLD].sort_values("line")
    litres = np.array([float(row[2]) for row in raw[HOUSEHOLD]])
    assert np.allclose(mine["index_m3"].to_numpy(), litres / 1000, rtol=0, atol=1e-9)
    assert mine["index_m3"].iloc[0] == 349.111  # 01/03/2016 00:09:17;349111
    assert 30 <= (r.groupby("meter_id")["index_m3"].agg(lambda s: s.iloc[-1] - s.iloc[0])).min()
    assert str(r["time"].dtype) == "datetime64[s, UTC]"


def test_utc_times_strictly_increase_per_meter(loaded):
    for meter, g in loaded.readings.groupby("meter_id"):
        assert g["time"].is_monotonic_increasing and g["time"].is_unique, meter
    assert loaded.readings["time"].is_monotonic_increasing


def test_spring_forward_2016_03_27(loaded):
    mine = loaded.readings[loaded.readings["file"] == HOUSEHOLD].set_index("local_time")["time"]
    # 01:08:48 CET then 03:08:48 CEST: one real hour apart, no reading lost or invented.
    assert mine[pd.Timestamp("2016-03-27 01:08:48")] == utc("2016-03-27 00:08:48")
    assert mine[pd.Timestamp("2016-03-27 03:08:48")] == utc("2016-03-27 01:08:48")
    assert loaded.nonexistent == 0


def test_fall_back_2016_10_30(loaded):
    mine = loaded.readings[loaded.readings["file"] == HOUSEHOLD]
    at = mine[mine["local_time"] == pd.Timestamp("2016-10-30 02:04:21")]
    # The wall time 02:04:21 was logged twice: 00:04:21 UTC (CEST) then 01:04:21 UTC (CET).
    assert at["time"].tolist() == [utc("2016-10-30 00:04:21"), utc("2016-10-30 01:04:21")]
    assert at["index_m3"].tolist() == [414.181, 414.181]
    after = mine[mine["local_time"] == pd.Timestamp("2016-10-30 03:04:28")]["time"]
    assert after.tolist() == [utc("2016-10-30 02:04:28")]
    # Every household logged the repeated hour: 9 second passes (one has three rows, two of
    # them in summer time, as their clock still advanced).
    assert loaded.second_pass == 9 and loaded.first_pass == 10


def test_bad_rows_are_reported_and_time_rules_apply(tmp_path):
    key = "00000000-1111-2222-3333-444444444444"
    path = tmp_path / "trial.csv"
    path.write_text(HEADER + "\n".join([
        f"{key};26/03/2016 23:30:00;1000;0",       # line 2
        f"{key};27/03/2016 02:30:00;2e+05;3",      # skipped wall time, scientific notation
        f"{key};27/03/2016 04:00:00;200001;1",
        f"{key};31/02/2016 10:00:00;200002;1",     # no such date
        f"{key};27/03/2016 04:30:00;n/a;1",        # unreadable register
        f"{key};27/03/2016 05:30:00;-5;1",         # negative register
        f"{key};27/03/2016 06:30:00",              # missing fields
        ";27/03/2016 07:30:00;200003;1",           # no user key
        f"{key};27/03/2016 04:00:00;200001;0",     # exact repeat of line 4
        f"{key};27/03/2016 04:00:00;200009;0",     # another index at that instant
        f"{key};28/03/2016 00:00:00;200010;9",     # line 12
    ]) + "\n", encoding="utf-8")
    data = load_daiad([path])
    assert data.rows_read == 11
    assert data.rejected_by_reason() == {"fields": 1, "user_key": 1, "datetime": 1, "reading": 2, "conflict": 1}
    assert sorted(r.line for r in data.rejected) == [5, 6, 7, 8, 9, 11]
    assert data.duplicates == 1 and data.nonexistent == 1
    r = data.readings
    assert len(r) + len(data.rejected) + data.duplicates == data.rows_read
    assert r["line"].tolist() == [2, 3, 4, 12]
    # 02:30 did not exist that night: read in the offset before the change, 01:30 UTC (03:30 CEST).
    assert r["time"].tolist() == [utc("2016-03-26 22:30"), utc("2016-03-27 01:30"), utc("2016-03-27 02:00"),
                                  utc("2016-03-27 22:00")]
    assert r["index_m3"].tolist() == [1.0, 200.0, 200.001, 200.01]


def test_a_file_that_is_not_daiad_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("meter,time,value\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DaiadFormatError, match="other.csv"):
        load_daiad([path])


def test_registry_rows_register_every_replayed_meter(loaded, sqlite_url):
    ids = sorted(loaded.readings["meter_id"].unique())
    session = make_sessionmaker(make_engine(sqlite_url))()
    counts = upsert_rows(session, daiad_registry_rows(ids))
    assert counts == {"households": 9, "meters": 9, "persons": 0}
    m = session.get(Meter, ids[0])
    assert m.driver == "izar" and m.household_id == f"daiad-{ids[0]}"


def test_replay_one_week_of_one_household(daiad_files, mosquitto):
    path = next(p for p in daiad_files if p.name == HOUSEHOLD)
    start, end = datetime(2016, 10, 26), datetime(2016, 11, 2)  # local, over the fall-back
    expected = load_daiad([path]).readings
    expected = expected[(expected["local_time"] >= start) & (expected["local_time"] < end)]
    sub = Subscriber(mosquitto.port)
    try:
        report = replay_daiad([path], f"mqtt://127.0.0.1:{mosquitto.port}", start=start, end=end)
        got = sub.wait_for(len(expected))
    finally:
        sub.close()
    assert report.published == len(expected) == len(got) == 7 * 24 + 1
    key = expected["meter_id"].iloc[0]
    assert report.meters == [key] and report.rejected == {} and report.rows_read == len(raw_rows(path))
    assert report.first_time == expected["time"].iloc[0].to_pydatetime()
    objs = [json.loads(p) for _, p in got]
    assert {t for t, _ in got} == {f"wmbusmeters/{key}"}
    assert all(o["_"] == "telegram" and o["meter"] == "izar" and o["id"] == key and o["current_alarms"] == "no_alarm"
               for o in objs)
    sent = [(datetime.strptime(o["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc), o["total_m3"])
            for o in objs]
    want = list(zip([t.to_pydatetime() for t in expected["time"]], expected["index_m3"]))
    assert sent == want
    assert timedelta(hours=1) in {b[0] - a[0] for a, b in zip(sent, sent[1:])}
