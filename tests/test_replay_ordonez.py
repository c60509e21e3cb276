"""``vigie replay ordonez`` through a real Mosquitto into a real InfluxDB: the ingestor stores, for the
replayed home, exactly the events ``load_ordonez`` reads from the data set (moved to the replay's
days), under the sensors' opaque ids of the registry the command wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from vigie.ingest.service import Ingestor
from vigie.simulators.ordonez import load_ordonez

from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.store.homes import HomeSensors, read_events

pytestmark = pytest.mark.e2e

UTC = timezone.utc


def clear_retained(port: int, topics: list[str]) -> None:
    publish = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"clear-{uuid.uuid4().hex[:8]}")
    publish.connect("127.0.0.1", port)
    publish.loop_start()
    try:
        for info in [publish.publish(t, b"", qos=1, retain=True) for t in topics]:
            info.wait_for_publish(10)
    finally:
        publish.disconnect()
        publish.loop_stop()


def test_replayed_home_is_stored_as_load_ordonez_reads_it(mosquitto, influx_store, tmp_path, shared_dir):
    data_dir = shared_dir / "data" / "ordonez-adl"
    if not (data_dir / "OrdonezA_Sensors.txt").exists():
        pytest.skip(f"{data_dir} not found")
    url = f"sqlite:///{tmp_path / 'vigie.db'}"
    sessions = make_sessionmaker(make_engine(url))
    settings = Settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}", mqtt_client_id=f"ord-{uuid.uuid4().hex[:8]}",
                        influx_url=influx_store.url, influx_database=influx_store.database,
                        influx_retention_policy="vigie_raw", data_dir=tmp_path / "data", database_url=url,
                        write_batch_interval_s=0.2, mqtt_session_expiry_s=600)
    ing = Ingestor(settings, influx_store, sessions)
    ing.start()
    start = date.today() - timedelta(days=20)   # inside the events policy's 90 days
    try:
        assert ing.wait_subscribed(10)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
        env.update(VIGIE_MQTT_URL=settings.mqtt_url, VIGIE_DATABASE_URL=url)
        run = subprocess.run([sys.executable, "-m", "vigie.cli", "replay", "ordonez", str(data_dir),
                              "--start-date", start.isoformat(), "--registry-out", str(tmp_path / "home.yaml")],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 60
        while ing.stats().received < report["published"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ing.wait_idle(30, quiet_s=0.3)
        st = ing.stats()
    finally:
        ing.stop()
        if (tmp_path / "home.yaml").exists():  # the availability messages are retained: clear them
            names = [s["friendly_name"] for s in yaml.safe_load((tmp_path / "home.yaml").read_text())
                     ["households"][0]["sensors"]]
            clear_retained(mosquitto.port, ["zigbee2mqtt/ordonez-a/bridge/state"]
                           + [f"zigbee2mqtt/{n}/availability" for n in names])
    assert st.received == report["published"] and st.dead_letters == {}

    data = load_ordonez(data_dir)
    zone = ZoneInfo(data.tz)
    shift = start - data.events[0].time.astimezone(zone).date()

    def moved(t: datetime) -> int:
        local = t.astimezone(zone).replace(tzinfo=None) + shift
        return int(local.replace(tzinfo=zone).timestamp())

    expected = Counter((e.sensor_id, moved(e.time), str(e.kind), e.value) for e in data.events)
    # The registry the command wrote: opaque ids, friendly names <home>/<room>/<location>.
    home = yaml.safe_load((tmp_path / "home.yaml").read_text())["households"][0]
    assert home["id"] == report["home"] == "ordonez-a"
    dataset_id = {s["id"]: "ordonez-a-" + s["friendly_name"].rsplit("/", 1)[1] for s in home["sensors"]}
    assert not set(dataset_id) & {s.sensor_id for s in data.sensors}  # opaque, not the data set's names
    events = read_events(influx_store, datetime.combine(start, datetime.min.time(), UTC) - timedelta(days=1),
                         datetime.now(UTC), HomeSensors.from_registry(sessions))
    stored = Counter((dataset_id[r.sensor_id], int(r.time), r.kind, r.value) for r in events.itertuples())
    assert report["events"] == len(data.events) == sum(stored.values())
    assert stored == expected
    assert set(events["home_id"]) == {"ordonez-a"}
    rooms = {dataset_id[r.sensor_id]: r.room for r in events.itertuples()}
    assert rooms == {s.sensor_id: str(s.room) for s in data.sensors}


def test_replay_takes_the_sensors_file_or_its_directory(shared_dir, tmp_path):
    """The issue's form ``vigie replay ordonez SENSORS_FILE --home HOME_ID --tz TZ`` and the
    directory form parse to the same data set; another file name is refused with a clear error."""
    from typer.main import get_command
    from vigie.simulators.replay_ordonez import data_dir_of, plan_replay

    from vigie.cli import app

    data_dir = shared_dir / "data" / "ordonez-adl"
    sensors_file = data_dir / "OrdonezA_Sensors.txt"
    if not sensors_file.exists():
        pytest.skip(f"{data_dir} not found")
    command = get_command(app).commands["replay"].commands["ordonez"]
    for source in (sensors_file, data_dir):
        params = command.make_context("ordonez", [str(source), "--home", "home-42", "--tz", "Europe/Paris"]).params
        assert (params["source"], params["home"], params["tz"]) == (source, "home-42", "Europe/Paris")
        assert data_dir_of(params["source"]) == data_dir
    by_file = plan_replay(load_ordonez(data_dir_of(sensors_file)), "home-42", date(2030, 1, 6))
    by_dir = plan_replay(load_ordonez(data_dir), "home-42", date(2030, 1, 6))
    assert by_file.messages == by_dir.messages and by_file.events > 0

    other = tmp_path / "sensors.csv"
    other.write_text("x")
    with pytest.raises(ValueError, match="OrdonezA_Sensors.txt"):
        data_dir_of(other)
    with pytest.raises(FileNotFoundError):
        data_dir_of(tmp_path / "missing" / "OrdonezA_Sensors.txt")
