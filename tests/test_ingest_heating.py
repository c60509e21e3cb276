"""Heating and LoRaWAN ingest end to end on a real Mosquitto and a real InfluxDB: zigbee2mqtt TRVs
and sensors, The Things Stack and ChirpStack uplinks beside water, routed by record type with their
registry tags, dead letters with their reasons, device_clock points; the broker credentials of a
building's bridge and of a LoRaWAN network server, confined to their topics."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import services
from test_broker_security import NOT_AUTHORIZED, Client
from test_ingest import make_settings, publish, started, wait_for
from vigie.broker_auth import BrokerAuthError, HeatingRoute, plan_credentials
from vigie.db import make_engine, make_sessionmaker
from vigie.ingest.deadletter import read_dead_letters
from vigie.ingest.service import Ingestor
from vigie.registry import load_registry_file
from vigie.store.heating import read_device_clock, read_heating
from vigie.store.water import read_indices

pytestmark = pytest.mark.e2e

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata"
CS_APP = "5f1c7d2e-8b3a-4c6d-9e0f-1a2b3c4d5e6f"

REGISTRY = """
households:
  - id: h-1
    meters:
      - {id: "axw1-000123", driver: axioma}
      - {id: "wm-0001", driver: kamwater}
buildings:
  - id: b-mairie
    name: Mairie
    holidays: FR
    outdoor_device: out-mairie
    rooms:
      - id: r-conseil
        name: Salle du conseil
        schedule: "mon-fri 08:00-18:00"
        devices:
          - {id: trv-0001, kind: trv, friendly_name: mairie/conseil/trv_1, radiator_w: 1500}
          - {id: trv-0101, kind: trv, radiator_w: 1000, lorawan: {dev_eui: "24E124714C321987", type: milesight-wt101}}
          - {id: pir-0001, kind: room_sensor, friendly_name: mairie/conseil/pir}
      - id: r-exterieur
        name: Extérieur
        devices:
          - {id: out-mairie, kind: outdoor, friendly_name: mairie/exterieur}
lorawan:
  device_types:
    axioma-w1:
      family: water
      fields: {index_m3: current_volume_m3, time: timestamp_utc}
      alarms: {leakage: LEAK, burst: BURST, backflow: REVERSE_FLOW}
    milesight-wt101:
      family: heating
      fields: {temperature_c: temperature, setpoint_c: target_temperature, valve_pct: valve_opening,
               battery_pct: battery}
  devices:
    - {dev_eui: "70B3D5FFFE0A1B2C", type: axioma-w1, meter: "axw1-000123"}
"""


def load_registry(tmp_path: Path, url: str):
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as s:
        load_registry_file(s, tmp_path / "registry.yaml")
    return sessions


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sample(name: str, **changes) -> dict:
    return json.loads((TESTDATA / name).read_text()) | changes


def body(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def tts(name: str, t: datetime, **decoded) -> dict:
    """A TTS sample received by the network server at ``t``, with ``decoded`` merged into its payload."""
    obj = sample(f"tts_v3/{name}")
    obj["received_at"] = obj["uplink_message"]["received_at"] = iso(t)
    obj["uplink_message"].get("decoded_payload", {}).update(decoded)
    return obj


def chirpstack(name: str, t: datetime, **decoded) -> dict:
    obj = sample(f"chirpstack_v4/{name}", time=t.isoformat())
    obj.get("object", {}).update(decoded)
    return obj


def test_heating_and_lorawan_messages_land_with_their_tags_and_bad_ones_are_dead_lettered(
        mosquitto, influx_store, tmp_path, sqlite_url):
    sessions = load_registry(tmp_path, sqlite_url)
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    now = datetime.now(UTC).replace(microsecond=0)
    t1, t2, t3 = now - timedelta(minutes=10), now - timedelta(minutes=9), now - timedelta(minutes=8)
    trv = sample("zigbee2mqtt_heating/danfoss_014g2461_heating.json", last_seen=iso(t1))
    cs_topic = f"application/{CS_APP}/device/{{}}/event/up"
    stream = [
        # zigbee2mqtt, a building's bridge under zigbee2mqtt-heating/mairie
        ("zigbee2mqtt-heating/mairie/conseil/trv_1", body(trv)),
        ("zigbee2mqtt-heating/mairie/conseil/trv_1", body(trv)),             # re-delivered: one point
        ("zigbee2mqtt-heating/mairie/conseil/trv_1/availability", b'{"state":"online"}'),   # ignored
        ("zigbee2mqtt-heating/mairie/bridge/state", b'{"state":"online"}'),                 # ignored
        ("zigbee2mqtt-heating/mairie/exterieur",
         body(sample("zigbee2mqtt_heating/sonoff_snzb02_outdoor.json", last_seen=iso(t2)))),
        ("zigbee2mqtt-heating/mairie/conseil/pir", body({"occupancy": "true", "battery": 88, "last_seen": iso(t2)})),
        ("zigbee2mqtt-heating/mairie/conseil/trv_1", b'{"linkquality":90}'),                 # ignored
        ("zigbee2mqtt-heating/mairie/grenier/trv_9", b'{"local_temperature":18}'),         # unknown_device
        ("zigbee2mqtt-heating/mairie/conseil/trv_1", b'{"running_state":"boost"}'),        # bad_state
        # The Things Stack
        ("v3/mairie-eau@ttn/devices/axw1-000123/up", body(tts("axioma_w1.json", t2, timestamp_utc=iso(t1)))),
        ("v3/mairie-chauffage@ttn/devices/wt101-conseil-2/up", body(tts("milesight_wt101.json", t2))),
        ("v3/mairie-eau@ttn/devices/axw1-000123/up", body(tts("no_decoded_payload.json", t2))),  # no_decoded_payload
        ("v3/mairie-eau@ttn/devices/axw1-000123/up", body(tts("simulated.json", t2))),     # ignored
        ("v3/mairie-eau@ttn/devices/flowiq-000931/up",
         body(tts("kamstrup_flowiq_mbusparser.json", t2))),                                 # unknown_device
        # ChirpStack
        (cs_topic.format("24e124714c321987"), body(chirpstack("milesight_wt101.json", t3, valve_opening=80))),
        (cs_topic.format("70b3d5fffe0a1b2c"),
         body(chirpstack("axioma_w1.json", t3, timestamp_utc=iso(t3), leakage="sometimes"))),  # mapping_error
        (cs_topic.format("70b3d5fffe0a0000"), body(chirpstack("axioma_w1.json", t3))),      # topic_mismatch
        # water beside them
        ("wmbusmeters/wm-0001", body({"_": "telegram", "meter": "kamwater", "id": "wm-0001", "total_m3": 12.5,
                                      "timestamp": t2.strftime("%Y-%m-%dT%H:%M:%SZ")})),
    ]
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        publish(mosquitto.port, stream)
        wait_for(lambda: ing.stats().received == len(stream), what="every message delivered")
        assert ing.wait_idle(20, quiet_s=0.3)
        st = ing.stats()
    finally:
        ing.stop()
    assert st.dead_letters == {"unknown_device": 2, "bad_state": 1, "no_decoded_payload": 1, "mapping_error": 1,
                               "topic_mismatch": 1}
    assert st.ignored == 4
    # heating: trv-0001 (twice, one point), out-mairie, pir-0001, trv-0101 (TTS, ChirpStack); water: 2
    assert st.stored == 2 + 1 + 1 + 2 + 2 and st.written == st.stored and st.pending == 0

    df = read_heating(influx_store, now - timedelta(hours=1), now + timedelta(minutes=1))
    got = [(r.device, r.building, r.room, r.kind, r.time) for r in df.itertuples()]
    assert got == [("out-mairie", "b-mairie", "r-exterieur", "outdoor", t2),
                   ("pir-0001", "b-mairie", "r-conseil", "room_sensor", t2),
                   ("trv-0001", "b-mairie", "r-conseil", "trv", t1),
                   ("trv-0101", "b-mairie", "r-conseil", "trv", t2),
                   ("trv-0101", "b-mairie", "r-conseil", "trv", t3)]
    by = {(r.device, r.time): r for r in df.itertuples()}
    danfoss = by[("trv-0001", t1)]
    assert (danfoss.temperature_c, danfoss.setpoint_c, danfoss.valve_pct, danfoss.heating, danfoss.window_open,
            danfoss.battery_pct) == (19.46, 21.0, 37.0, 1.0, 0.0, 82.0)
    assert by[("out-mairie", t2)].temperature_c == -3.2 and by[("pir-0001", t2)].occupied == 1.0
    assert (by[("trv-0101", t2)].valve_pct, by[("trv-0101", t3)].valve_pct) == (35.0, 80.0)
    # Everything in the writes' (raw) policy, at precision s.
    raw = influx_store.query_json('SELECT count(temperature_c) FROM "vigie_raw"."heating"')
    assert raw[0]["values"][0][1] == 4

    water = read_indices(influx_store, now - timedelta(hours=1), now + timedelta(minutes=1), with_alarms=True)
    assert [(r.meter_id, r.time, r.index_m3, r.alarms) for r in water.itertuples()] == [
        ("axw1-000123", int(t1.timestamp()), 152.471, "LEAK"), ("wm-0001", int(t2.timestamp()), 12.5, "")]

    clock = read_device_clock(influx_store, now - timedelta(hours=1), now + timedelta(minutes=1))
    offsets = {(r.family, r.device): round(r.offset_s) for r in clock.itertuples()}
    # One point per device (its second report came within a minute, its offset unchanged or not);
    # each offset = record time − reception time, about −10, −9 or −8 minutes here.
    assert set(offsets) == {("heating", "trv-0001"), ("heating", "out-mairie"), ("heating", "pir-0001"),
                            ("heating", "trv-0101"), ("water", "axw1-000123"), ("water", "wm-0001")}
    assert -660 < offsets[("heating", "trv-0001")] < -590 and -600 < offsets[("water", "wm-0001")] < -530
    assert st.clock_points == len(clock) == 6

    letters: dict[str, list] = {}
    for dl in read_dead_letters(settings.data_dir / "dead-letters.jsonl"):
        letters.setdefault(dl.kind, []).append(dl)
    assert sorted(dl.reason for dl in letters["unknown_device"]) == [
        "unknown_device: DevEUI 0025ca0a00015e3f is not a registered LoRaWAN device",
        "unknown_device: friendly name 'mairie/grenier/trv_9' is not a registered heating device"]
    assert letters["no_decoded_payload"][0].decoder == "tts_v3"
    assert "leakage" in letters["mapping_error"][0].reason and letters["mapping_error"][0].decoder == "chirpstack_v4"
    assert letters["topic_mismatch"][0].topic == cs_topic.format("70b3d5fffe0a0000")
    assert json.loads(letters["bad_state"][0].payload) == {"running_state": "boost"}  # kept whole


def test_a_registry_lookup_before_the_tables_are_readable_waits_not_loses(mosquitto, influx_store, tmp_path,
                                                                        sqlite_url):
    """A heating message arriving before the registry can be read is held (back-pressure), then stored."""
    sessions = make_sessionmaker(make_engine(sqlite_url))
    settings = make_settings(tmp_path, mosquitto.port, influx_store, sqlite_url)
    with sessions() as s:  # the heating tables unreadable: renamed away for a moment
        s.connection().exec_driver_sql("ALTER TABLE heating_devices RENAME TO heating_devices_away")
        s.commit()
    ing = started(Ingestor(settings, influx_store, sessions))
    try:
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        publish(mosquitto.port, [("zigbee2mqtt-heating/mairie/exterieur",
                                  body({"temperature": 4.5, "last_seen": iso(t)}))])
        wait_for(lambda: ing.stats().received == 1, what="the message")
        time.sleep(1.5)
        assert ing.stats().stored == 0 and ing.stats().dead_letters == {}
        with sessions() as s:
            s.connection().exec_driver_sql("ALTER TABLE heating_devices_away RENAME TO heating_devices")
            s.commit()
        (tmp_path / "registry.yaml").write_text(REGISTRY)
        with sessions() as s:
            load_registry_file(s, tmp_path / "registry.yaml")
        wait_for(lambda: ing.stats().stored == 1, timeout=20, what="the held message stored")
        assert ing.wait_idle(20, quiet_s=0.3)
    finally:
        ing.stop()
    df = read_heating(influx_store, t - timedelta(minutes=1), t + timedelta(minutes=1))
    assert list(df.device) == ["out-mairie"] and list(df.temperature_c) == [4.5]


# -- broker credentials ----------------------------------------------------------------------------
HEATING_TOPICS = [("zigbee2mqtt-heating/#", "zigbee2mqtt_heating")]
LORAWAN_TOPICS = [("v3/+/devices/+/up", "tts_v3"), ("application/+/device/+/event/up", "chirpstack_v4")]


def test_plan_gives_each_building_bridge_its_prefix_and_each_network_server_its_filters():
    creds = {c.username: c for c in plan_credentials(
        [], [("wmbusmeters/#", "wmbusmeters")], "svc", "sim",
        heating=[HeatingRoute("b-mairie", "mairie/conseil/trv_1"), HeatingRoute("b-mairie", "mairie/exterieur"),
                 HeatingRoute("b-ecole", "ecole/classe1/trv")],
        heating_topic_decoders=HEATING_TOPICS, lorawan_topic_decoders=LORAWAN_TOPICS, lorawan_devices=True)}
    assert creds["b-mairie"].role == "bridge" and creds["b-mairie"].write == ("zigbee2mqtt-heating/mairie/#",)
    assert creds["b-ecole"].write == ("zigbee2mqtt-heating/ecole/#",)
    assert creds["lorawan-tts_v3"].role == "network_server" and creds["lorawan-tts_v3"].write == ("v3/+/devices/+/up",)
    assert creds["lorawan-chirpstack_v4"].write == ("application/+/device/+/event/up",)
    assert creds["svc"].read == ("wmbusmeters/#", "zigbee2mqtt-heating/#", "v3/+/devices/+/up",
                                 "application/+/device/+/event/up")
    assert creds["sim"].write == ("wmbusmeters/#", "zigbee2mqtt-heating/#", "v3/+/devices/+/up",
                                  "application/+/device/+/event/up")
    # No LoRaWAN device registered: no network-server credential.
    plain = plan_credentials([], [], "svc", lorawan_topic_decoders=LORAWAN_TOPICS)
    assert [c.username for c in plain] == ["svc"]


@pytest.mark.parametrize("routes,message", [
    ([HeatingRoute("b-mairie", "trv_1")], "building b-mairie: friendly name 'trv_1' has no building prefix"),
    ([HeatingRoute("b-mairie", "mairie/a"), HeatingRoute("b-mairie", "annexe/b")], "start with both"),
    ([HeatingRoute("b-1", "site/a"), HeatingRoute("b-2", "site/b")], "used by buildings b-1 and b-2"),
    ([HeatingRoute("svc", "svc/a")], "service user 'svc' is also"),
])
def test_plan_refuses_buildings_whose_bridge_could_not_be_confined(routes, message):
    with pytest.raises(BrokerAuthError, match=message):
        plan_credentials([], [], "svc", heating=routes, heating_topic_decoders=HEATING_TOPICS)


def test_a_building_bridge_and_a_network_server_publish_only_on_their_topics(tmp_path_factory):
    work = tmp_path_factory.mktemp("heating-broker")
    url = f"sqlite:///{work / 'registry.db'}"
    load_registry(work, url)
    passwords = services.broker_credentials(work / "auth", url)
    assert {"b-mairie", "lorawan-tts_v3", "lorawan-chirpstack_v4"} <= set(passwords)
    svc = services.mosquitto(work / "mosquitto", auth_dir=work / "auth").start()
    try:
        reader = Client(svc.port, services.SERVICE_USER, passwords[services.SERVICE_USER])
        for f in ("zigbee2mqtt-heating/#", "v3/+/devices/+/up", "application/+/device/+/event/up"):
            assert reader.subscribe(f) == 1
        bridge = Client(svc.port, "b-mairie", passwords["b-mairie"])
        lns = Client(svc.port, "lorawan-chirpstack_v4", passwords["lorawan-chirpstack_v4"])
        state = b'{"local_temperature":19}'
        assert bridge.publish("zigbee2mqtt-heating/mairie/conseil/trv_1", state) == 0
        assert bridge.publish("zigbee2mqtt-heating/ecole/classe/trv", state) == NOT_AUTHORIZED
        assert bridge.publish("zigbee2mqtt/mairie/conseil/trv_1", state) == NOT_AUTHORIZED
        assert bridge.publish("application/x/device/24e124714c321987/event/up", b"{}") == NOT_AUTHORIZED
        up = (TESTDATA / "chirpstack_v4/milesight_wt101.json").read_bytes()
        assert lns.publish(f"application/{CS_APP}/device/24e124714c321987/event/up", up) == 0
        assert lns.publish(f"application/{CS_APP}/device/24e124714c321987/event/join", b"{}") == NOT_AUTHORIZED
        assert lns.publish("v3/app@ttn/devices/d/up", b"{}") == NOT_AUTHORIZED
        assert lns.publish("zigbee2mqtt-heating/mairie/conseil/trv_1", state) == NOT_AUTHORIZED
        deadline = time.monotonic() + 10
        while len(reader.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert sorted(t for t, _ in reader.messages) == [f"application/{CS_APP}/device/24e124714c321987/event/up",
                                                         "zigbee2mqtt-heating/mairie/conseil/trv_1"]
        for c in (reader, bridge, lns):
            c.close()
    finally:
        svc.stop()


# -- device clocks ---------------------------------------------------------------------------------
def test_device_clock_points_hourly_on_a_move_never_twice_a_minute_and_not_for_stale_or_undated_records():
    from vigie.ingest.clock import DeviceClocks
    from vigie.records import HeatingReading, MeterReading

    clocks = DeviceClocks()
    t0 = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)

    def at(minutes: float, offset_s: float, device: str = "trv-1") -> list[str]:
        rx = t0 + timedelta(minutes=minutes)
        r = HeatingReading(device, rx + timedelta(seconds=offset_s), temperature_c=20.0)
        return [p.line for p in clocks.points("heating", [r], rx)]

    assert at(0, -2.0) == [f"device_clock,device=trv-1,family=heating offset_s=-2 {int(t0.timestamp())}"]
    assert at(15, -2.5) == [] and at(30, -40.0) == []          # steady within 60 s: nothing until the hour
    assert len(at(45, -200.0)) == 1                            # moved by more than 60 s
    assert at(45.5, 400.0) == []                               # moved again, but within a minute of the last
    assert len(at(46, 400.0)) == 1
    assert at(100, 399.0) == [] and len(at(106.5, 399.0)) == 1  # an hour after the last point
    assert at(200, 0.0) == []                                  # dated at reception: no clock
    assert at(300, -2 * 86400.0, "trv-2") == []                # two days behind: a backlog, not a clock
    water = MeterReading("m-1", t0 - timedelta(seconds=30), 1.0)
    assert [p.device_id for p in clocks.points("water", [water, water], t0)] == ["m-1"]  # once per device
