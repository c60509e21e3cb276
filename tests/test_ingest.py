"""The ingestor end to end on a real Mosquitto and a real InfluxDB: exactly-once points, dead
letters, InfluxDB outages, ingestor and broker restarts."""

from __future__ import annotations

import base64
import json
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
from vigie.store.water import read_indices

pytestmark = pytest.mark.e2e

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata"
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)


# -- helpers ------------------------------------------------------------------------------------
def make_settings(tmp_path: Path, broker_port: int, store: InfluxStore, sqlite_url: str, **kw) -> Settings:
    return Settings(mqtt_url=f"mqtt://127.0.0.1:{broker_port}", mqtt_client_id=f"vigie-test-{uuid.uuid4().hex[:8]}",
                    influx_url=store.url, influx_database=store.database, influx_retention_policy="vigie_raw",
                    data_dir=tmp_path / "data", database_url=sqlite_url, write_batch_interval_s=0.2, **kw)


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


def wm(meter_id: str, minute: int, index: float, **extra) -> bytes:
    """A wmbusmeters kamwater telegram, ``minute`` minutes after T0."""
    d = {"_": "telegram", "media": "cold water", "meter": "kamwater", "name": f"m{meter_id}", "id": meter_id,
         "total_m3": index, "status": "OK", "timestamp": (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")}
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
            ("vigie/water/gw-1", json.dumps(batch).encode()),
            ("vigie/water/gw-1", json.dumps(batch).encode()),       # a batch re-sent
        ]
        publish(mosquitto.port, stream)
        publish(mosquitto.port, [("wmbusmeters/q0", wm("q-0", 3, 9.0))], qos=0)
        wait_for(lambda: ing.stats().received == 9, what="every message delivered")
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
        assert st.received == 9 and st.ignored == 1 and st.dead_letters == {}
        assert st.stored == 1 + 2 + 1 + 1 + 3 + 3 + 1 and st.written == st.stored and st.pending == 0
        assert st.connected and st.store_available
    finally:
        ing.stop()
        publish(mosquitto.port, [(f"wmbusmeters/retained-{settings.mqtt_client_id}", b"")], retain=True)
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
        assert MeterReading.from_json(rejected.payload).meter_id == "old-1"
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
        assert st.commits < k / 20
        print(f"{k} queued messages ingested in {elapsed:.2f} s, {st.commits} commits, "
              f"largest group {st.max_commit_group}")
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


def test_unknown_decoder_name_is_a_configuration_error(influx_store, tmp_path, sqlite_url):
    settings = make_settings(tmp_path, 1, influx_store, sqlite_url, water_topics=["zigbee2mqtt/#=z2m"])
    with pytest.raises(ValueError, match="no decoder named 'z2m'"):
        Ingestor(settings, influx_store, None, accept_unknown=True)
