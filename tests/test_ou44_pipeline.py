"""Real heating data through the whole pipeline: the OU44 data set (shared/data/ou44-heating, two
rooms, one-minute data, 2017) replayed by ``vigie replay ou44`` over a real Mosquitto, ingested into a
real InfluxDB, analysed by ``vigie heating --occupancy observed`` (the rooms' own motion sensors as
the schedule). The pipeline's daily energy must agree with the same estimate computed straight from
the CSV (docs/ou44-report.md, "Direct from the CSV"), and the heating of empty rooms it reports must
be heating the data shows with nobody there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_ingest import make_settings, started

from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.service import Ingestor
from vigie.simulators.ou44 import load_ou44

VIGIE = [sys.executable, "-m", "vigie.cli"]
TZ = "Europe/Copenhagen"
FIRST, LAST = "2017-03-22", "2017-04-04"   # the full local days of the data set


@pytest.fixture
def ou44_dir(shared_dir):
    path = shared_dir / "data" / "ou44-heating"
    if not (path / "df_t.csv").exists():
        pytest.skip("shared/data/ou44-heating is not present")
    return path


def test_ou44_replayed_ingested_and_analysed(ou44_dir, mosquitto, influx_store, tmp_path, sqlite_url):
    engine = make_engine(sqlite_url)
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_MQTT_URL=settings.mqtt_url, VIGIE_INFLUX_URL=influx_store.url,
               VIGIE_INFLUX_DATABASE=influx_store.database, VIGIE_DATABASE_URL=sqlite_url,
               VIGIE_DATA_DIR=str(tmp_path / "cli"), VIGIE_TIMEZONE=TZ)

    def vigie(*args):
        done = subprocess.run([*VIGIE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    # The replay registers the building before it publishes; the ingestor looks devices up then.
    ing = started(Ingestor(settings, influx_store, make_sessionmaker(engine)))
    try:
        out = json.loads(vigie("replay", "ou44", str(ou44_dir), "--registry-out", str(tmp_path / "ou44.yaml"),
                               "--as-fast-as-possible").strip().splitlines()[-1])
        assert ing.wait_idle(120, quiet_s=1.0)
        stats = ing.stats()
        assert stats.dead_letters_total == 0 and stats.stored == out["published"]
    finally:
        ing.stop()
        engine.dispose()

    result = json.loads(vigie("heating", "--from", FIRST, "--to", LAST, "--occupancy", "observed", "--json"))
    if os.environ.get("OU44_RESULT_JSON"):  # docs/ou44-report.md's pipeline section is made from this
        with open(os.environ["OU44_RESULT_JSON"], "w", encoding="utf-8") as f:
            json.dump(result, f)
    days = pd.DataFrame(result["room_days"])
    days["room"] = days["room"].str.removeprefix("ou44-")   # registry ids: the building's prefix
    assert set(days["room"]) == {"e22-508-1", "e22-511-2"} and (days["method"] == "valve").all()

    # Straight from the CSV: Σ valve % × radiator W × 1 min per local day.
    data = load_ou44(ou44_dir)
    rooms = data.rooms.assign(day=data.rooms["time"].dt.tz_convert(TZ).dt.date.astype(str))
    power = {r.room: r.radiator_w for r in data.room_info}
    rooms["kwh"] = rooms["valve_pct"] / 100 * rooms["room"].map(power) / 60 / 1000
    direct = rooms.groupby(["room", "day"])["kwh"].sum()
    piped = days.set_index(["room", "day"])["energy_kwh"]
    both = pd.concat({"direct": direct, "pipeline": piped}, axis=1).dropna()
    assert len(both) == 2 * 14
    # Per room over the two weeks within 5 %; per day within 15 % or 0.5 kWh (15-min sampling).
    totals = both.groupby(level="room").sum()
    assert np.allclose(totals["pipeline"], totals["direct"], rtol=0.05), totals
    assert (abs(both["pipeline"] - both["direct"]) <= np.maximum(0.15 * both["direct"], 0.5)).all(), both

    # Heating of empty rooms: found in both rooms, and each finding is heating nobody was there for.
    found = [{**f, "room": f["room"].removeprefix("ou44-")} for f in result["findings"]
             if f["kind"] == "unoccupied_heating"]
    assert {f["room"] for f in found} == {"e22-508-1", "e22-511-2"}
    by_room = rooms.set_index("time").groupby("room")
    for f in found:
        span = by_room.get_group(f["room"]).loc[f["start"]:f["end"]]
        assert span["pir"].mean() < 0.1 and span["valve_pct"].max() >= 10, f
    # Degree-days (DJU, base 18 °C) per day from the outdoor sensor: known for every full day.
    assert days["hdd"].notna().all() and days["hdd"].between(0, 18).all()
