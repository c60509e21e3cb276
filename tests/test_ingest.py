"""The ingestor end to end on a real Mosquitto and a real InfluxDB: exactly-once points, dead
letters, InfluxDB outages, ingestor and broker restarts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import services
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.deadletter import read_dead_letters
from vigie.ingest.service import Ingestor
from vigie.records import MeterReading
from vigie.registry import RegistryRow, upsert_rows
from vigie.store import InfluxStore
from vigie.store.water import read_indices, reading_line

pytestmark = pytest.mark.e2e

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata"
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)


# -- helpers ------------------------------------------------------------------------------------
def make_settings(tmp_path: Path, broker_port: int, store: InfluxStore, sqlite_url: str, **kw) -> Settings:
    return Settings(mqtt_url=f"mqtt://127.0.0.1:{broker_port}", mqtt_client_id=f"vigie-test-{uuid.uuid4().hex[:8]}",
                    influx_url=store.url, influx_database=store.database, influx_retention_policy="vigie_raw",
                    data_dir=tmp_path / "data", database_url=sqlite_url, write_batch_interval_s=0.2,
                    mqtt_session_expiry_s=600, **kw)


def registry(sqlite_url: str, meters: list[str]):
    sessions = make_sessionmaker(make_engine(sqlite_url))
    with sessions() as s:
        upsert_rows(s, [RegistryRow(household_id="h-1", meter_id=m) for m in meters])
    return sessions


def publish(port: int, messages: list[tuple[str, bytes]], qos: int = 1, retain: bool = False) -> None:
    """Publish with a plain paho client and wait until the broker has every message."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


def wm(meter_id: str, second: int, index: float, **extra) -> bytes:
    """A wmbusmeters kamwater telegram read ``second`` seconds after T0."""
    d = {"_": "telegram", "media": "cold water", "meter": "kamwater", "name": f"m{meter_id}", "id": meter_id,
         "total_m3": index, "status": "OK", "timestamp": (T0 + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    d.update(extra)
    return json.dumps(d).encode()


def points(store: InfluxStore, meter_ids: list[str] | None = None):
    return read_indices(store, T0 - timedelta(days=1), datetime.now(UTC) + timedelta(days=1), meter_ids,
                        with_alarms=True)


def count_points(store: InfluxStore) -> int:
    series = store.query_json('SELECT count(index_m3) FROM "water_reading"')
    return int(series[0]["values"][0][1]) if series else 0


def wait_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def started(ing: Ingestor) -> Ingestor:
    ing.start()
    assert ing.wait_subscribed(10), "ingestor did not subscribe"
    return ing


# -- tests --------------------------------------------------------------------------------------
def test_readings_are_stored_exactly_once(mosquitto, influx_store, tmp_path, sqlite_url):
    sessions = registry(sqlite_url, ["71234567", "2a31f0c4", "00531288", "vg-000124", "0042", "r-1", "q-0"])
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    # Retained before the ingestor's first session exists: delivered on subscribe, like the
    # Home Assistant add-on's retained state.
    publish(mosquitto.port, [(f"wmbusmeters/retained-{settings.mqtt_client_id}", wm("r-1", 0, 1.0))], retain=True)
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        izar = json.loads((TESTDATA / "wmbusmeters/izar.json").read_text())
        izar["timestamp"] = (T0 + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        batch = json.loads((TESTDATA / "native/batch.json").read_text())
        for i, item in enumerate(batch):
            item["time"] = (T0 + timedelta(minutes=10 + i)).isoformat()
        kam = wm("71234567", 1, 152.417, status="LEAK", current_status="LEAK", flow_m3h=0.012)
        stream = [
            ("wmbusmeters/Apt12_Cold", kam),
            ("wmbusmeters/Apt12_Cold", kam),                       # the same telegram twice
            ("wmbusmeters/Maison_14", json.dumps(izar).encode()),
            ("wmbusmeters/00531288", wm("00531288", 2, 51.33, meter="apator162")),
            ("wmbusmeters/bridge/state", b"online"),                # gateway state: ignored
            ("wmbusmeters/Apt12_Cold", b""),                        # a retained message cleared: ignored
            ("vigie/water/gw-1", json.dumps(batch).encode()),
            ("vigie/water/gw-1", json.dumps(batch).encode()),       # a batch re-sent
        ]
        publish(mosquitto.port, stream)
        publish(mosquitto.port, [("wmbusmeters/q0", wm("q-0", 3, 9.0))], qos=0)
        wait_for(lambda: ing.stats().received == 10, what="every message delivered")
        assert ing.wait_idle(20, quiet_s=0.3)
        df = points(influx_store)
        assert sorted(df.meter_id) == sorted(["r-1", "71234567", "2a31f0c4", "00531288", "vg-000124", "vg-000124",
                                              "0042", "q-0"])
        row = df[df.meter_id == "71234567"].iloc[0]
        assert row.index_m3 == 152.417 and row.alarms == "LEAK"
        assert df[df.meter_id == "2a31f0c4"].iloc[0].alarms == "LEAK"
        flow = influx_store.query_json("SELECT flow_l_per_h, status FROM water_reading WHERE meter_id = '71234567'")
        assert flow[0]["values"][0][1:] == [12.0, "LEAK"]
        st = ing.stats()
        assert st.received == 10 and st.ignored == 2 and st.dead_letters == {}
        assert st.stored == 1 + 2 + 1 + 1 + 3 + 3 + 1 and st.written == st.stored and st.pending == 0
        assert st.connected and st.store_available
    finally:
        ing.stop()
        publish(mosquitto.port, [(f"wmbusmeters/retained-{settings.mqtt_client_id}", b"")], retain=True)  # clean up
    assert not (tmp_path / "data" / "dead-letters.jsonl").read_text()


def test_bad_input_is_dead_lettered_and_ingest_goes_on(mosquitto, influx_store, tmp_path, sqlite_url):
    sessions = registry(sqlite_url, ["good-1", "vg-1", "old-1"])
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    # A field type conflict in the shard of early 2001: InfluxDB refuses float index_m3 there.
    old = datetime(2001, 1, 2, tzinfo=UTC)
    influx_store.write_lines([f'water_reading,meter_id=poison index_m3="x" {int(old.timestamp())}'])
    future = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = [
        ("wmbusmeters/a", b"{not json", "not_json"),
        ("wmbusmeters/a", b"\xff\xfe\x00binary", "not_utf8"),
        ("wmbusmeters/a", b"[1,2,3]", "not_object"),
        ("wmbusmeters/a", wm("good-1", 1, 1.0)[:-1] + b', "total_m3": null}', "bad_index"),
        ("wmbusmeters/a", wm("good-1", 1, "abc"), "bad_index"),
        ("wmbusmeters/a", wm("good-1", 1, -4.0), "bad_index"),
        ("wmbusmeters/a", json.dumps({"total_m3": 1.0, "timestamp": "2026-01-01T00:00:00Z"}).encode(), "bad_id"),
        ("wmbusmeters/a", wm("good-1", 1, 1.0, timestamp="not a time"), "bad_time"),
        ("wmbusmeters/a", wm("good-1", 1, 1.0, timestamp=future), "future_time"),
        ("wmbusmeters/a", wm("good-1", 1, 1.0, flow_m3h="lots"), "bad_field"),
        ("wmbusmeters/a", wm("stranger", 1, 1.0), "unknown_meter"),
        ("vigie/water/gw", b'{"meter_id":"vg-1","index_m3":1,"alarms":["FIRE"]}', "bad_field"),
        ("wmbusmeters/a", wm("old-1", 0, 5.0, timestamp=old.strftime("%Y-%m-%dT%H:%M:%SZ")), "store_rejected"),
    ]
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        stream = []
        for i, (topic, payload, _) in enumerate(bad):
            stream.append((topic, payload))
            stream.append(("wmbusmeters/good", wm("good-1", 10 + i, 10.0 + i)))  # ingest goes on
        publish(mosquitto.port, stream)
        wait_for(lambda: ing.stats().received == len(stream), what="every message delivered")
        assert ing.wait_idle(20, quiet_s=0.3)
        letters = read_dead_letters(settings.data_dir / "dead-letters.jsonl")
        assert sorted(dl.kind for dl in letters) == sorted(k for _, _, k in bad)
        by_kind = {dl.kind: dl for dl in letters}
        # Payloads are kept whole: text as is, non-UTF-8 bytes as base64.
        assert by_kind["not_json"].payload == "{not json" and by_kind["not_json"].payload_encoding == "utf-8"
        assert by_kind["not_utf8"].payload_encoding == "base64"
        assert base64.b64decode(by_kind["not_utf8"].payload) == b"\xff\xfe\x00binary"
        assert by_kind["future_time"].topic == "wmbusmeters/a" and by_kind["future_time"].decoder == "wmbusmeters"
        assert "stranger" in by_kind["unknown_meter"].reason
        rejected = by_kind["store_rejected"]
        assert "field type conflict" in rejected.reason
        # The refused point as it was posted, ready to be re-posted once the conflict is fixed.
        assert rejected.payload.startswith("water_reading,meter_id=old-1 ") and rejected.decoder == "wmbusmeters"
        df = points(influx_store, ["good-1"])
        assert list(df.index_m3) == [10.0 + i for i in range(len(bad))]
        st = ing.stats()
        assert st.dead_letters_total == len(bad) and st.dead_letters["bad_index"] == 3
        assert st.written == len(bad)
    finally:
        ing.stop()


def test_influxdb_outage_and_ingestor_restart_lose_nothing(mosquitto, influxd_private, tmp_path, sqlite_url):
    store = InfluxStore(services.influx_url(influxd_private), "vigie", retention_policy="vigie_raw", timeout=5)
    sessions = registry(sqlite_url, ["m-1"])
    settings = make_settings(tmp_path, mosquitto.port, store, sqlite_url)
    n, m = 30, 40

    ing = started(Ingestor(settings, store, sessions, max_backoff_s=1.0))
    try:
        publish(mosquitto.port, [("wmbusmeters/m-1", wm("m-1", i, float(i))) for i in range(n)])
        wait_for(lambda: ing.stats().received == n, what="every message delivered")
        assert ing.wait_idle(20, quiet_s=0.3)
        assert count_points(store) == n

        influxd_private.stop()
        publish(mosquitto.port, [("wmbusmeters/m-1", wm("m-1", i, float(i))) for i in range(n, n + m)])
        wait_for(lambda: ing.stats().stored == n + m, what="readings spooled while InfluxDB is down")
        wait_for(lambda: not ing.stats().store_available, what="outage noticed")
        assert ing.stats().pending == m
    finally:
        ing.stop(flush_timeout_s=2)

    # Restarted while InfluxDB is still down: the spool carries the readings over.
    ing = started(Ingestor(settings, store, sessions, max_backoff_s=1.0))
    try:
        assert ing.stats().pending == m
        influxd_private.start()
        services.wait_influx_ready(influxd_private)
        assert ing.wait_idle(30, quiet_s=0.3)
        df = points(store)
        assert len(df) == n + m
        assert list(df.index_m3) == [float(i) for i in range(n + m)]
        assert ing.stats().written == m
    finally:
        ing.stop()
        store.close()


@pytest.mark.parametrize("broker_restart", [False, True], ids=["ingestor-down", "ingestor-down-broker-restart"])
def test_durable_session_delivers_what_was_published_while_away(mosquitto_private, influx_store, tmp_path,
                                                               sqlite_url, broker_restart):
    sessions = registry(sqlite_url, [f"d-{k}" for k in range(10)])
    settings = make_settings(tmp_path, mosquitto_private.port, influx_store, sqlite_url)
    ing = started(Ingestor(settings, influx_store, sessions))  # creates the session
    ing.stop()

    k = 3000
    publish(mosquitto_private.port, [(f"wmbusmeters/d-{i % 10}", wm(f"d-{i % 10}", i, float(i))) for i in range(k)])
    if broker_restart:
        mosquitto_private.stop()
        mosquitto_private.start()

    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        t0 = time.monotonic()
        wait_for(lambda: ing.stats().received >= k, timeout=60, what="the queued messages")
        assert ing.wait_idle(60, quiet_s=0.3)
        elapsed = time.monotonic() - t0
        assert count_points(influx_store) == k
        st = ing.stats()
        assert st.stored == k and st.written == k
        # With a Receive Maximum of 1000 the broker sends far more than Mosquitto's default 20
        # unacknowledged messages ahead, so a group commit acknowledges many at once.
        assert st.max_commit_group > 20, st
        print(f"{k} queued messages ingested in {elapsed:.2f} s, {st.commits} commits, "
              f"largest group {st.max_commit_group}")
    finally:
        ing.stop()


def test_broker_restart_while_running_reconnects_and_resubscribes(mosquitto_private, influx_store, tmp_path,
                                                                  sqlite_url):
    sessions = registry(sqlite_url, ["b-1"])
    settings = make_settings(tmp_path, mosquitto_private.port, influx_store, sqlite_url)
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        publish(mosquitto_private.port, [("wmbusmeters/b-1", wm("b-1", i, float(i))) for i in range(50)])
        wait_for(lambda: ing.stats().received == 50, what="the first messages")
        mosquitto_private.stop()
        wait_for(lambda: not ing.connected, what="the disconnection noticed")
        mosquitto_private.start()
        wait_for(lambda: ing.connected and ing.wait_subscribed(0), timeout=30, what="reconnection")
        publish(mosquitto_private.port, [("wmbusmeters/b-1", wm("b-1", i, float(i))) for i in range(50, 100)])
        wait_for(lambda: ing.stats().received >= 100, what="the messages after the restart")
        assert ing.wait_idle(20, quiet_s=0.3)
        assert list(points(influx_store).index_m3) == [float(i) for i in range(100)]
    finally:
        ing.stop()


INGESTOR_PROCESS = """
import time
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.service import Ingestor
from vigie.store import InfluxStore
s = Settings()
ing = Ingestor(s, InfluxStore.from_settings(s), make_sessionmaker(make_engine(s.database_url)))
ing.start()
print("started", flush=True)
time.sleep(600)
"""


def test_ingestor_killed_mid_stream_loses_and_duplicates_nothing(mosquitto, influx_store, tmp_path, sqlite_url):
    """SIGKILL while messages stream in: what was acknowledged is in the spool, what was not is
    re-sent by the broker, and InfluxDB ends with exactly one point per reading."""
    sessions = registry(sqlite_url, ["k-1"])
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    env = {**os.environ, "VIGIE_MQTT_URL": settings.mqtt_url, "VIGIE_MQTT_CLIENT_ID": settings.mqtt_client_id,
           "VIGIE_INFLUX_URL": settings.influx_url, "VIGIE_INFLUX_DATABASE": settings.influx_database,
           "VIGIE_DATA_DIR": str(settings.data_dir), "VIGIE_DATABASE_URL": sqlite_url,
           "VIGIE_WRITE_BATCH_INTERVAL_S": "0.2"}
    env.pop("VIGIE_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-c", INGESTOR_PROCESS], env=env, stdout=subprocess.PIPE)
    total = 4000
    try:
        assert proc.stdout.readline().strip() == b"started"
        publisher = threading.Thread(target=publish, args=(mosquitto.port, [
            ("wmbusmeters/k-1", wm("k-1", i, float(i))) for i in range(total)]))
        publisher.start()
        wait_for(lambda: count_points(influx_store) > 0, what="the first points")
        proc.kill()
        proc.wait(10)
        publisher.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    killed_at = count_points(influx_store)
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        wait_for(lambda: count_points(influx_store) == total and ing.stats().pending == 0, timeout=60,
                 what="every reading in InfluxDB")
        assert ing.wait_idle(20, quiet_s=0.5)
        assert count_points(influx_store) == total
        assert list(points(influx_store).index_m3) == [float(i) for i in range(total)]
        st = ing.stats()
        print(f"killed with {killed_at}/{total} points in InfluxDB; after restart {st.written - st.stored} "
              f"reading(s) came from the spool and {st.received} message(s) from the broker")
    finally:
        ing.stop()


def test_stop_acknowledges_everything_committed(mosquitto, influx_store, tmp_path, sqlite_url):
    """After a graceful stop nothing is re-delivered: every message was acknowledged."""
    sessions = registry(sqlite_url, ["s-1"])
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    ing = started(Ingestor(settings, influx_store, sessions))
    publish(mosquitto.port, [("wmbusmeters/s-1", wm("s-1", i, float(i))) for i in range(200)])
    wait_for(lambda: ing.stats().received == 200, what="every message delivered")
    assert ing.wait_idle(20, quiet_s=0.3)
    ing.stop()
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        assert ing.wait_idle(20, quiet_s=0.5)
        assert ing.stats().received == 0
        assert count_points(influx_store) == 200
    finally:
        ing.stop()


def test_ingests_with_the_mqtt_socket_above_descriptor_1024(mosquitto, influx_store, tmp_path, sqlite_url):
    """A process with many files or connections open (``vigie serve``) gives the MQTT socket a
    descriptor >= 1024, which select() refuses (FD_SETSIZE): a select() loop never connected, and said nothing."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 1200")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    sessions = registry(sqlite_url, ["fd-1"])
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    hog = [os.open(os.devnull, os.O_RDONLY)]
    try:
        while hog[-1] < 1030:
            hog.append(os.open(os.devnull, os.O_RDONLY))
        ing = Ingestor(settings, influx_store, sessions)
        ing.start()
        try:
            assert ing.wait_subscribed(10), "no connection with a descriptor >= 1024"
            assert ing._mqtt._client.socket().fileno() >= 1024
            for fd in hog:  # the test's publisher is a paho client: its own loop uses select()
                os.close(fd)
            hog = []
            publish(mosquitto.port, [("wmbusmeters/fd-1", wm("fd-1", i, float(i))) for i in range(20)])
            wait_for(lambda: ing.stats().received == 20, what="every message delivered")
            assert ing.wait_idle(20, quiet_s=0.3)
            assert count_points(influx_store) == 20
        finally:
            ing.stop()
    finally:
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_worker_processes_share_the_stream_and_keep_their_sessions(mosquitto, influx_store, tmp_path, sqlite_url):
    """ingest_workers=2: two processes on one shared subscription store every reading once, each
    dead-letters into its own file, and messages published while they are away reach them."""
    from vigie.ingest.deadletter import read_data_dir_dead_letters

    meters = [f"w-{i}" for i in range(20)]
    sessions = registry(sqlite_url, meters)
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url, ingest_workers=2)
    first = [(f"wmbusmeters/{m}", wm(m, i, float(i))) for i in range(200) for m in [meters[i % 20]]]
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        publish(mosquitto.port, first + [("wmbusmeters/w-0", b"{not json")])
        wait_for(lambda: ing.stats().written == 200 and ing.stats().dead_letters_total == 1, timeout=60,
                 what="every reading written by the workers")
        assert ing.wait_idle(20, quiet_s=0.3)
        each = ing._pool.worker_stats()
        assert len(each) == 2 and all(w.received > 0 for w in each), "the broker shares the stream"
        assert sum(w.received for w in each) == ing.stats().received == 201
    finally:
        ing.stop()
    assert [dl.kind for dl in read_data_dir_dead_letters(settings.data_dir)] == ["not_json"]
    assert {str(p.relative_to(settings.data_dir)): mode(p) for p in [settings.data_dir, *settings.data_dir.rglob("*")]
            } == {".": 0o700, "worker-0": 0o700, "worker-1": 0o700, "worker-0/spool.sqlite": 0o600,
                  "worker-1/spool.sqlite": 0o600, "worker-0/dead-letters.jsonl": 0o600,
                  "worker-1/dead-letters.jsonl": 0o600}
    # Published while both workers are away: queued in their durable sessions.
    later = [(f"wmbusmeters/{m}", wm(m, 1000 + i, float(i))) for i in range(100) for m in [meters[i % 20]]]
    publish(mosquitto.port, later)
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        wait_for(lambda: ing.stats().written == 100, timeout=60, what="the queued readings written")
    finally:
        ing.stop()
    assert count_points(influx_store) == 300


def test_unknown_decoder_name_is_a_configuration_error(influx_store, tmp_path, sqlite_url):
    settings = make_settings(tmp_path, 1, influx_store, sqlite_url, water_topics=["zigbee2mqtt/#=z2m"])
    with pytest.raises(ValueError, match="no decoder named 'z2m'"):
        Ingestor(settings, influx_store, None, accept_unknown=True)
    homes = make_settings(tmp_path, 1, influx_store, sqlite_url, home_topics=["zigbee2mqtt/+/x=zigbee2mqtt"])
    with pytest.raises(ValueError, match="VIGIE_HOME_TOPICS filter 'zigbee2mqtt/\\+/x': a zigbee2mqtt decoder needs"):
        Ingestor(homes, influx_store, make_sessionmaker(make_engine(sqlite_url)))
    with pytest.raises(ValueError, match="VIGIE_HOME_TOPICS: home sensors are looked up in the registry"):
        Ingestor(make_settings(tmp_path, 1, influx_store, sqlite_url), influx_store, None, accept_unknown=True)


# -- assisted-living homes (zigbee2mqtt) --------------------------------------------------------
HOME_REGISTRY = """
households:
  - id: home-0001
    meters: [{id: "h-m1", driver: izar}]
    sensors:
      - {id: s-motion, friendly_name: home-0001/bedroom/motion, room: bedroom, kind: motion}
      - {id: s-door, friendly_name: home-0001/entrance/door, room: entrance, kind: contact}
  - id: home-0002
    sensors:
      - {id: s-kettle, friendly_name: home-0002/kitchen/kettle, room: kitchen, kind: power}
"""


def z2m(t: datetime, **fields) -> bytes:
    return json.dumps({"battery": 90, "linkquality": 80,
                       "last_seen": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **fields}).encode()


def home_registry(tmp_path: Path, sqlite_url: str):
    from vigie.registry import load_registry_file

    (tmp_path / "homes.yaml").write_text(HOME_REGISTRY)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    with sessions() as s:
        load_registry_file(s, tmp_path / "homes.yaml")
    return sessions


def test_home_events_and_availability_go_to_the_events_policy_once(mosquitto, influx_store, tmp_path, sqlite_url):
    """zigbee2mqtt beside water on one ingestor: events as home_event (events policy, ms), the
    availability on change only (across a restart too), refusals as dead letters, duplicates once."""
    from vigie.store.homes import HomeSensors, last_availability, read_events

    sessions = home_registry(tmp_path, sqlite_url)
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    t = T0.replace(microsecond=0) + timedelta(hours=1)
    opened, shut = z2m(t, contact=False), z2m(t + timedelta(milliseconds=450), contact=True)  # the same second
    kettle = z2m(t + timedelta(seconds=5), power=1850.5, state="ON")
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        stream = [
            ("zigbee2mqtt/home-0001/bedroom/motion/availability", b'{"state":"online"}'),
            ("zigbee2mqtt/home-0001/bedroom/motion/availability", b'{"state":"online"}'),  # no change: not stored
            ("zigbee2mqtt/home-0001/bridge/state", b'{"state":"online"}'),
            ("zigbee2mqtt/home-0001/bedroom/motion", z2m(t, occupancy=True)),
            ("zigbee2mqtt/home-0001/entrance/door", opened),
            ("zigbee2mqtt/home-0001/entrance/door", shut),
            ("zigbee2mqtt/home-0001/entrance/door", shut),                    # re-delivered: one point
            ("wmbusmeters/h-m1", wm("h-m1", 7, 3.25)),                      # water in the same batches
            ("zigbee2mqtt/home-0002/kitchen/kettle", kettle),
            ("zigbee2mqtt/home-0001/bridge/info", b'{"version":"2.1.3"}'),    # not a report: ignored
            ("zigbee2mqtt/home-0001/bedroom/motion", b'{"battery":89}'),      # no state: ignored
            ("zigbee2mqtt/home-0009/hall/motion", z2m(t, occupancy=True)),    # unknown_device
            ("zigbee2mqtt/home-0001/bedroom/motion", b"{not json"),           # not_json
            ("zigbee2mqtt/home-0001/bedroom/motion", z2m(t, contact=True)),   # kind_mismatch
            ("zigbee2mqtt/home-0001/bedroom/motion/availability", b'{"state":"offline"}'),
        ]
        publish(mosquitto.port, stream)
        wait_for(lambda: ing.stats().received == len(stream), what="every message delivered")
        assert ing.wait_idle(20, quiet_s=0.3)
        st = ing.stats()
        assert st.dead_letters == {"unknown_device": 1, "not_json": 1, "kind_mismatch": 1}
        assert st.ignored == 3 and st.stored == 3 + 5 + 1 and st.written == st.stored
    finally:
        ing.stop()
    letters = {dl.kind: dl for dl in read_dead_letters(settings.data_dir / "dead-letters.jsonl")}
    assert letters["unknown_device"].reason == ("unknown_device: friendly name 'home-0009/hall/motion' is not a "
                                                "registered sensor")
    assert letters["not_json"].payload == "{not json" and letters["not_json"].decoder == "zigbee2mqtt"

    sensors = HomeSensors.from_registry(sessions)
    df = read_events(influx_store, t - timedelta(minutes=1), t + timedelta(minutes=1), sensors)
    got = sorted((r.time, r.home_id, r.sensor_id, r.room, r.kind, r.value) for r in df.itertuples())
    s0 = int(t.timestamp())
    assert got == [(s0, "home-0001", "s-door", "entrance", "contact", 0.0),
                   (s0, "home-0001", "s-door", "entrance", "contact", 1.0),
                   (s0, "home-0001", "s-motion", "bedroom", "motion", 1.0),
                   (s0 + 5, "home-0002", "s-kettle", "kitchen", "power", 1850.5)]
    ms = influx_store.query_json('SELECT value FROM "vigie_events"."home_event" WHERE sensor_id = \'s-door\'',
                                 epoch="ms")
    assert [v[0] for v in ms[0]["values"]] == [int(t.timestamp() * 1000), int(t.timestamp() * 1000) + 450]
    assert influx_store.query_json('SELECT count(value) FROM "vigie_raw"."home_event"') == []
    assert list(points(influx_store, ["h-m1"]).index_m3) == [3.25]  # water still in the raw policy
    assert last_availability(influx_store, ["s-motion", "zigbee2mqtt/home-0001"]) == {
        "s-motion": False, "zigbee2mqtt/home-0001": True}
    avail = influx_store.query_json('SELECT count(online) FROM "vigie_events"."sensor_availability"')
    assert avail[0]["values"][0][1] == 3

    # A new ingestor on the same data directory remembers the last availability: the retained
    # "offline" and bridge "online" received again store nothing; a change does.
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        publish(mosquitto.port, [("zigbee2mqtt/home-0001/bedroom/motion/availability", b'{"state":"offline"}'),
                                 ("zigbee2mqtt/home-0001/bridge/state", b"online"),
                                 ("zigbee2mqtt/home-0001/entrance/door/availability", b"offline")])
        wait_for(lambda: ing.stats().received == 3, what="the availability messages")
        assert ing.wait_idle(20, quiet_s=0.3)
        assert ing.stats().stored == 1 and ing.stats().ignored == 2
    finally:
        ing.stop()
    assert last_availability(influx_store, ["s-door"]) == {"s-door": False}


# -- spool, dead-letter store and writer on their own ------------------------------------------
def reading(meter: str, t: datetime, index: float) -> MeterReading:
    return MeterReading(meter, t, index, alarms=("LEAK",), status_raw="LEAK", source="native")


def spooled(readings: list[MeterReading]):
    from vigie.ingest.spool import SpooledPoint

    return [SpooledPoint.of(r) for r in readings]


def test_spool_is_fifo_and_survives_reopen(tmp_path):
    from vigie.ingest.spool import Spool

    rs = spooled([reading("s", T0 + timedelta(seconds=i), float(i)) for i in range(10)])
    spool = Spool(tmp_path / "spool.sqlite")
    spool.append(rs[:4])
    spool.append(rs[4:])
    first = spool.peek(3)
    assert [r for _, r in first] == rs[:3]
    assert spool.remove_through(first[-1][0]) == 3
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert spool.pending() == 7
    rest = spool.peek(100)
    assert [r for _, r in rest] == rs[3:] and rest[0][0] > first[-1][0]
    spool.remove_through(rest[-1][0])
    spool.append(rs[:1])  # sequence numbers are never reused
    assert spool.peek(1)[0][0] > rest[-1][0]
    spool.close()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_data_files_are_private_to_the_service_user(tmp_path):
    """Dead letters hold whole payloads (a friendly name may name a person): the data directory
    Vigie creates is 0700, its files 0600 — the SQLite WAL files too; an operator's existing
    directory keeps its mode, and a file an earlier version left world-readable is tightened."""
    from vigie.ingest.deadletter import DeadLetterStore
    from vigie.ingest.spool import Spool

    created = tmp_path / "var" / "vigie"
    spool, dead = Spool(created / "spool.sqlite"), DeadLetterStore(created / "dead-letters.jsonl")
    spool.append(spooled([reading("m", T0, 1.0)]))
    assert mode(tmp_path / "var") == mode(created) == 0o700
    assert {p.name: mode(p) for p in created.iterdir()} == {
        "spool.sqlite": 0o600, "spool.sqlite-wal": 0o600, "spool.sqlite-shm": 0o600, "dead-letters.jsonl": 0o600}
    spool.close()
    dead.close()

    operators = tmp_path / "shared"
    operators.mkdir(mode=0o750)
    os.chmod(operators, 0o750)
    old = operators / "dead-letters.jsonl"
    old.write_text("")
    os.chmod(old, 0o644)
    DeadLetterStore(old).close()
    Spool(operators / "spool.sqlite").close()
    assert mode(operators) == 0o750
    assert mode(old) == mode(operators / "spool.sqlite") == 0o600


def test_spool_converts_an_earlier_versions_json_rows_in_order(tmp_path):
    """A spool written by a version that kept MeterReading JSON is read on, in order, as lines."""
    import sqlite3

    from vigie.ingest.spool import Spool
    from vigie.store.water import reading_line

    rs = [reading("legacy", T0 + timedelta(seconds=i), float(i)) for i in range(5)]
    db = sqlite3.connect(tmp_path / "spool.sqlite")
    db.execute("CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, reading TEXT NOT NULL)")
    db.executemany("INSERT INTO spool (reading) VALUES (?)", [(r.to_json(),) for r in rs])
    db.commit()
    db.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert spool.pending() == 5
    got = spool.peek(10)
    assert [p.line for _, p in got] == [reading_line(r) for r in rs]
    assert {(p.device_id, p.source, p.purpose, p.precision) for _, p in got} == {("legacy", "native", "", "s")}
    spool.append(spooled(rs[:1]))  # after the converted rows
    assert spool.peek(10)[-1][0] > got[-1][0]
    spool.close()


def test_spool_of_the_water_only_version_is_upgraded_in_place(tmp_path):
    """A spool whose points table predates homes (meter_id, no purpose or precision) keeps its
    rows, in order, as water readings (the writes' policy, precision s)."""
    import sqlite3

    from vigie.ingest.spool import Spool, SpooledPoint

    rs = [reading("before", T0 + timedelta(seconds=i), float(i)) for i in range(3)]
    db = sqlite3.connect(tmp_path / "spool.sqlite")
    db.execute("CREATE TABLE points (seq INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL, "
               "meter_id TEXT NOT NULL, source TEXT NOT NULL)")
    db.executemany("INSERT INTO points (line, meter_id, source) VALUES (?, ?, ?)",
                   [(reading_line(r), r.meter_id, r.source) for r in rs])
    db.commit()
    db.close()
    spool = Spool(tmp_path / "spool.sqlite")
    home = SpooledPoint("home_event,home_id=h,kind=motion,sensor_id=s value=1 1700000000000", "s", "zigbee2mqtt",
                        "events", "ms")
    spool.append([home], {"s": True})
    assert [p for _, p in spool.peek(10)] == spooled(rs) + [home]
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert [p for _, p in spool.peek(10)] == spooled(rs) + [home] and spool.availability() == {"s": True}
    spool.close()


def test_dead_letter_file_skips_a_torn_last_line(tmp_path):
    from vigie.ingest.deadletter import DeadLetterStore, StoredDeadLetter

    path = tmp_path / "dead-letters.jsonl"
    store = DeadLetterStore(path)
    store.append([StoredDeadLetter.from_message("a/b", b"x", "not_json: x", T0, "native")])
    store.close()
    with open(path, "ab") as fh:
        fh.write(b'{"topic":"a/b","payl')  # a crash mid-append
    store = DeadLetterStore(path)
    store.append([StoredDeadLetter.from_message("a/c", "é".encode(), "bad_id: y", T0)])
    store.close()
    letters = read_dead_letters(path)
    assert [(d.topic, d.payload, d.kind) for d in letters] == [("a/b", "x", "not_json"), ("a/c", "é", "bad_id")]
    assert [d.topic for d in read_dead_letters(path, limit=1)] == ["a/c"]
    assert read_dead_letters(tmp_path / "missing.jsonl") == []


def test_writer_bisects_a_batch_down_to_the_refused_readings(influx_store, tmp_path):
    from vigie.ingest.deadletter import DeadLetterStore
    from vigie.ingest.spool import Spool
    from vigie.ingest.writer import SpoolWriter

    old = datetime(2001, 1, 2, tzinfo=UTC)
    influx_store.write_lines([f'water_reading,meter_id=poison index_m3="x" {int(old.timestamp())}'])
    rs = [reading("w", T0 + timedelta(seconds=i), float(i)) for i in range(40)]
    for i in (3, 17, 18):
        rs[i] = reading("w-old", old + timedelta(seconds=i), float(i))
    spool, dead = Spool(tmp_path / "spool.sqlite"), DeadLetterStore(tmp_path / "dl.jsonl")
    spool.append(spooled(rs))
    writer = SpoolWriter(spool, influx_store, dead, batch_size=100, interval_s=0.05)
    writer.start()
    try:
        wait_for(lambda: spool.pending() == 0, what="the spool drained")
    finally:
        writer.stop()
    assert writer.written == 37 and writer.rejected == 3
    assert list(points(influx_store, ["w"]).index_m3) == [float(i) for i in range(40) if i not in (3, 17, 18)]
    letters = read_dead_letters(tmp_path / "dl.jsonl")
    assert sorted(d.payload for d in letters) == sorted(reading_line(rs[i]) for i in (3, 17, 18))
    assert all(d.kind == "store_rejected" and "field type conflict" in d.reason for d in letters)
    spool.close()
    dead.close()


def test_writer_keeps_readings_while_the_database_is_missing(influxd, tmp_path):
    """A 404 (database not found) is a configuration fault, not bad points: retried, never
    dead-lettered."""
    from vigie.ingest.deadletter import DeadLetterStore
    from vigie.ingest.spool import Spool
    from vigie.ingest.writer import SpoolWriter

    store = InfluxStore(services.influx_url(influxd), f"missing_{uuid.uuid4().hex[:6]}", retention_policy=None)
    spool, dead = Spool(tmp_path / "spool.sqlite"), DeadLetterStore(tmp_path / "dl.jsonl")
    spool.append(spooled([reading("w", T0 + timedelta(seconds=i), float(i)) for i in range(5)]))
    writer = SpoolWriter(spool, store, dead, interval_s=0.05, initial_backoff_s=0.05, max_backoff_s=0.2)
    writer.start()
    try:
        wait_for(lambda: not writer.available, what="the refusal noticed")
        assert spool.pending() == 5 and dead.counts() == {}
        store.execute(f'CREATE DATABASE "{store.database}"')
        wait_for(lambda: spool.pending() == 0, what="the spool drained")
        assert writer.available and writer.written == 5
    finally:
        writer.stop()
        spool.close()
        dead.close()
        store.close()
