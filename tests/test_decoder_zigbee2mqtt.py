"""zigbee2mqtt decoder: every sample payload in ingest/decoders/testdata/zigbee2mqtt/ and every refusal."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from vigie.ingest.decoders import DecodeError
from vigie.ingest.decoders.zigbee2mqtt import DeviceAvailability, SensorInfo, Zigbee2MqttDecoder
from vigie.records import Room, SensorEvent, SensorKind

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata" / "zigbee2mqtt"
RECEIVED = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)

SENSORS = {
    "home-0001/bedroom/motion": SensorInfo("s-01", SensorKind.MOTION, Room.BEDROOM, "home-0001"),
    "home-0001/hall/ikea": SensorInfo("s-02", SensorKind.MOTION, Room.ENTRANCE, "home-0001"),
    "home-0001/entrance/door": SensorInfo("s-03", SensorKind.CONTACT, Room.ENTRANCE, "home-0001"),
    "home-0001/bathroom/leak": SensorInfo("s-04", SensorKind.WATER_LEAK, Room.BATHROOM, "home-0001"),
    "home-0001/kitchen/kettle": SensorInfo("s-05", SensorKind.POWER, Room.KITCHEN, "home-0001"),
    "home-0001/bedroom/bed": SensorInfo("s-06", SensorKind.PRESENCE, Room.BEDROOM, "home-0001"),
    "home-0001/living_room/chair": SensorInfo("s-07", SensorKind.PRESENCE, Room.LIVING_ROOM, "home-0001"),
    "home-0001/tv": SensorInfo("s-08", SensorKind.USE, Room.LIVING_ROOM, "home-0001"),
    "0x00158d0001a2b3c4": SensorInfo("s-09", SensorKind.MOTION, Room.KITCHEN, "home-0002"),
}
DECODER = Zigbee2MqttDecoder(SENSORS.get)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# (sample file, friendly name, expected (sensor_id, time, kind, value, battery_pct, link_quality))
SAMPLES = [
    ("aqara_rtcgq11lm_occupancy.json", "home-0001/bedroom/motion",
     ("s-01", "2026-03-14T07:45:02.113Z", SensorKind.MOTION, 1.0, 91.0, 87.0)),
    ("aqara_rtcgq11lm_clear.json", "home-0001/bedroom/motion",
     ("s-01", "2026-03-14T07:46:32.120Z", SensorKind.MOTION, 0.0, 91.0, 84.0)),
    # last_seen: epoch (milliseconds)
    ("ikea_e1525_occupancy.json", "home-0001/hall/ikea",
     ("s-02", "2026-03-14T07:45:02.113Z", SensorKind.MOTION, 1.0, 87.0, 102.0)),
    # contact false = open → 1; last_seen: ISO_8601_local
    ("aqara_mccgq11lm_open.json", "home-0001/entrance/door",
     ("s-03", "2026-03-14T07:45:02.113Z", SensorKind.CONTACT, 1.0, 100.0, 120.0)),
    ("aqara_mccgq11lm_closed.json", "home-0001/entrance/door",
     ("s-03", "2026-03-14T07:45:09.870Z", SensorKind.CONTACT, 0.0, 100.0, 117.0)),
    ("aqara_sjcgq11lm_leak.json", "home-0001/bathroom/leak",
     ("s-04", "2026-03-14T07:40:00Z", SensorKind.WATER_LEAK, 1.0, 88.0, 66.0)),
    ("tuya_ts011f_kettle_on.json", "home-0001/kitchen/kettle",
     ("s-05", "2026-03-14T07:41:12.400Z", SensorKind.POWER, 1832.4, None, 156.0)),
    # relay OFF with the last power still cached: 0 W
    ("tuya_ts011f_off_cached_power.json", "home-0001/kitchen/kettle",
     ("s-05", "2026-03-14T07:44:30Z", SensorKind.POWER, 0.0, None, 150.0)),
    ("tuya_ts0601_bed_presence.json", "home-0001/bedroom/bed",
     ("s-06", "2026-03-14T06:58:41.005Z", SensorKind.PRESENCE, 1.0, 76.0, 72.0)),
    ("hobeian_zg210z_sit.json", "home-0001/living_room/chair",
     ("s-07", "2026-03-14T07:30:00.500Z", SensorKind.PRESENCE, 1.0, 64.0, 93.0)),
    # numbers and booleans as text, epoch as digits
    ("text_values.json", "home-0001/bedroom/bed",
     ("s-06", "2026-03-14T07:30:00.500Z", SensorKind.PRESENCE, 0.0, 64.0, 93.0)),
]

AVAILABILITY = [
    ("availability_online.json", "zigbee2mqtt/home-0001/bedroom/motion/availability", ("sensor", "s-01", True, "home-0001")),
    ("availability_offline.json", "zigbee2mqtt/home-0001/kitchen/kettle/availability", ("sensor", "s-05", False, "home-0001")),
    ("availability_legacy.txt", "zigbee2mqtt/0x00158d0001a2b3c4/availability", ("sensor", "s-09", True, "home-0002")),
    ("bridge_state.json", "zigbee2mqtt/bridge/state", ("bridge", "zigbee2mqtt", True, None)),
    ("bridge_state.json", "zigbee2mqtt/home-0001/bridge/state", ("bridge", "zigbee2mqtt/home-0001", True, None)),
]


@pytest.mark.parametrize("name,friendly,expected", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_payloads(name, friendly, expected):
    events = DECODER.decode(f"zigbee2mqtt/{friendly}", (TESTDATA / name).read_bytes(), RECEIVED)
    sensor_id, time, kind, value, battery, link = expected
    assert events == [SensorEvent(sensor_id, t(time), kind, value, battery, link, "zigbee2mqtt")]
    assert events[0].time.tzinfo == UTC


@pytest.mark.parametrize("name,topic,expected", AVAILABILITY, ids=[a[1] for a in AVAILABILITY])
def test_availability_messages(name, topic, expected):
    got = DECODER.decode(topic, (TESTDATA / name).read_bytes(), RECEIVED)
    device_kind, device_id, online, home = expected
    assert got == DeviceAvailability(device_kind, device_id, online, RECEIVED, home_id=home)


def test_every_sample_file_is_in_a_table():
    listed = {s[0] for s in SAMPLES} | {a[0] for a in AVAILABILITY}
    assert {p.name for p in TESTDATA.iterdir()} == listed


def test_time_is_reception_time_without_last_seen():
    [event] = DECODER.decode("zigbee2mqtt/home-0001/entrance/door", b'{"contact":true,"battery":99}', RECEIVED)
    assert event.time == RECEIVED and event.value == 0.0 and event.link_quality is None


@pytest.mark.parametrize("body,value", [
    (b'{"state":"ON"}', 1.0), (b'{"state":"off"}', 0.0), (b'{"state":true}', 1.0), (b'{"state":"false"}', 0.0),
])
def test_use_kind_reads_the_relay_state_in_any_spelling(body, value):
    [event] = DECODER.decode("zigbee2mqtt/home-0001/tv", body, RECEIVED)
    assert (event.kind, event.value) == (SensorKind.USE, value)


def test_power_kind_reads_state_off_alone_as_zero_and_state_on_alone_as_nothing():
    assert DECODER.decode("zigbee2mqtt/home-0001/kitchen/kettle", b'{"state":"OFF"}', RECEIVED)[0].value == 0.0
    assert DECODER.decode("zigbee2mqtt/home-0001/kitchen/kettle", b'{"state":"ON","linkquality":5}', RECEIVED) == []
    [event] = DECODER.decode("zigbee2mqtt/home-0001/kitchen/kettle", b'{"power":"12.5"}', RECEIVED)
    assert event.value == 12.5


def test_presence_sensor_reads_presence_field_and_pressure_states():
    chair = "zigbee2mqtt/home-0001/living_room/chair"
    assert DECODER.decode(chair, b'{"presence":true}', RECEIVED)[0].value == 1.0
    assert DECODER.decode(chair, b'{"pressure_state":"sedentary"}', RECEIVED)[0].value == 1.0
    assert DECODER.decode(chair, b'{"pressure_state":"none"}', RECEIVED)[0].value == 0.0


def test_a_battery_only_report_is_not_an_event():
    assert DECODER.decode("zigbee2mqtt/home-0001/bedroom/motion", b'{"battery":90,"voltage":3000}', RECEIVED) == []


@pytest.mark.parametrize("topic", [
    "zigbee2mqtt/bridge/info", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/logging",
    "zigbee2mqtt/home-0001/bridge/event", "zigbee2mqtt/bridge/response/device/rename",
    "zigbee2mqtt/home-0001/kitchen/kettle/set", "zigbee2mqtt/home-0001/kitchen/kettle/set/state",
    "zigbee2mqtt/home-0001/bedroom/motion/get",
])
def test_bridge_and_command_topics_are_not_reports(topic):
    assert DECODER.decode(topic, b'{"state":"ON"}', RECEIVED) == []


def test_last_seen_formats_agree():
    topic = "zigbee2mqtt/home-0001/bedroom/motion"
    times = {DECODER.decode(topic, b'{"occupancy":true,"last_seen":%s}' % v, RECEIVED)[0].time
             for v in (b'"2026-03-14T07:45:02.113Z"', b'"2026-03-14T08:45:02.113+01:00"', b"1773474302113",
                       b'"1773474302113"')}
    assert times == {t("2026-03-14T07:45:02.113Z")}


def test_custom_base_topic():
    dec = Zigbee2MqttDecoder(SENSORS.get, base_topic="site/z2m")
    assert dec.decode("site/z2m/home-0001/bedroom/motion", b'{"occupancy":"true"}', RECEIVED)[0].value == 1.0
    with pytest.raises(DecodeError) as err:
        dec.decode("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true}', RECEIVED)
    assert err.value.kind == "bad_topic"
    with pytest.raises(ValueError, match="base_topic"):
        Zigbee2MqttDecoder(SENSORS.get, base_topic="zigbee2mqtt/#")


REFUSALS = [
    ("zigbee2mqtt/home-0001/bedroom/motion", b"\xff\xfe", "not_utf8", "UTF-8"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b"occupancy=1", "not_json", "not JSON"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b"[true]", "not_object", "JSON object"),
    ("wmbusmeters/home-0001/bedroom/motion", b"{}", "bad_topic", "not under"),
    ("zigbee2mqtt/", b"{}", "bad_topic", "not under"),
    ("zigbee2mqtt/home-0001//motion", b"{}", "bad_topic", "empty level"),
    ("zigbee2mqtt/home-0001/garage/pir", b'{"occupancy":true}', "unknown_device", "home-0001/garage/pir"),
    ("zigbee2mqtt/home-0001/garage/pir/availability", b"online", "unknown_device", "not a registered"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"contact":false,"battery":90}', "kind_mismatch", "contact"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":"maybe"}', "bad_state", "occupancy"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":1}', "bad_state", "occupancy"),
    ("zigbee2mqtt/home-0001/living_room/chair", b'{"pressure_state":"lying"}', "bad_state", "pressure_state"),
    ("zigbee2mqtt/home-0001/kitchen/kettle", b'{"power":-3,"state":"ON"}', "bad_field", "power"),
    ("zigbee2mqtt/home-0001/kitchen/kettle", b'{"power":"lots"}', "bad_field", "power"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"battery":120}', "bad_field", "battery"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"linkquality":true}', "bad_field", "linkquality"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":"yesterday"}', "bad_time", "last_seen"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":"2026-03-14T07:45:02"}', "bad_time",
     "offset"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":86400000}', "bad_time", "before 2000"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":1e300}', "bad_time", "epoch"),
    ("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":"2026-03-14T09:00:00Z"}',
     "future_time", "after reception"),
    ("zigbee2mqtt/home-0001/bedroom/motion/availability", b'{"state":"sleeping"}', "bad_state", "online"),
    ("zigbee2mqtt/bridge/state", b'"online"', "not_object", "availability"),
]


@pytest.mark.parametrize("topic,body,kind,reason", REFUSALS, ids=[f"{r[2]}-{i}" for i, r in enumerate(REFUSALS)])
def test_refusals_name_their_reason(topic, body, kind, reason):
    with pytest.raises(DecodeError) as err:
        DECODER.decode(topic, body, RECEIVED)
    assert err.value.kind == kind
    assert reason in str(err.value)


def test_future_tolerance_is_configurable():
    dec = Zigbee2MqttDecoder(SENSORS.get, max_future_s=3600)
    late = (RECEIVED + timedelta(minutes=30)).isoformat().encode()
    [event] = dec.decode("zigbee2mqtt/home-0001/bedroom/motion", b'{"occupancy":true,"last_seen":"%s"}' % late,
                         RECEIVED)
    assert event.time == RECEIVED + timedelta(minutes=30)
