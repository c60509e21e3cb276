"""zigbee2mqtt_heating decoder: every sample in ingest/decoders/testdata/zigbee2mqtt_heating/ and every
refusal; the decoder registry's protocol for bound and mixed decoders."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from vigie.heating_registry import HeatingDeviceInfo
from vigie.ingest.decoders import DecodeError, get_decoder, lookup_of, record_types, register
from vigie.ingest.decoders.zigbee2mqtt_heating import Zigbee2MqttHeatingDecoder
from vigie.records import HeatingDeviceKind, HeatingReading, MeterReading, SensorEvent

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata" / "zigbee2mqtt_heating"
RECEIVED = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)
TRV, METER, ROOM, OUT = (HeatingDeviceKind.TRV, HeatingDeviceKind.HEAT_METER, HeatingDeviceKind.ROOM_SENSOR,
                         HeatingDeviceKind.OUTDOOR)


def dev(device_id: str, kind: HeatingDeviceKind, room: str = "r-conseil") -> HeatingDeviceInfo:
    return HeatingDeviceInfo(device_id, kind, "b-mairie", room)


# The registry lookup, as HeatingDirectory.by_friendly_name gives it: friendly name → device.
DEVICES = {
    "mairie/conseil/trv_1": dev("trv-0001", TRV),
    "mairie/conseil/trv_2": dev("trv-0002", TRV),
    "mairie/bureau/trv_tuya": dev("trv-0003", TRV, "r-bureau"),
    "mairie/accueil/trv_aqara": dev("trv-0004", TRV, "r-accueil"),
    "mairie/accueil/trv_bosch": dev("trv-0005", TRV, "r-accueil"),
    "mairie/archives/trv_sonoff": dev("trv-0006", TRV, "r-archives"),
    "mairie/conseil/radiateur_prise": dev("hm-0001", METER),
    "mairie/conseil/pir": dev("rs-0001", ROOM),
    "mairie/conseil/thermo": dev("rs-0002", ROOM),
    "mairie/exterieur": dev("out-mairie", OUT, "r-exterieur"),
}
DECODER = Zigbee2MqttHeatingDecoder(DEVICES.get)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def reading(device_id: str, time: str, **values) -> HeatingReading:
    return HeatingReading(device_id, t(time), source="zigbee2mqtt_heating", **values)


# (sample file, friendly name, expected reading or None for "not a reading")
SAMPLES = [
    ("danfoss_014g2461_heating.json", "mairie/conseil/trv_1",
     reading("trv-0001", "2026-03-14T07:45:02.113Z", temperature_c=19.46, setpoint_c=21.0, valve_pct=37.0,
             heating=True, window_open=False, battery_pct=82.0)),
    ("danfoss_014g2461_window_open.json", "mairie/conseil/trv_1",
     reading("trv-0001", "2026-03-14T07:52:40.007Z", temperature_c=17.12, setpoint_c=21.0, valve_pct=0.0,
             heating=False, window_open=True, battery_pct=81.0)),
    # window_open_internal 0 = quarantine: detection suspended, the state is unknown; last_seen epoch ms
    ("danfoss_014g2461_numeric_window.json", "mairie/conseil/trv_2",
     reading("trv-0002", "2026-03-14T07:45:02.113Z", temperature_c=18.01, setpoint_c=20.0, valve_pct=100.0,
             heating=True, battery_pct=79.0)),
    # window_detection "ON" is the feature switch: window_open false is the state
    ("tuya_ts0601_thermostat.json", "mairie/bureau/trv_tuya",
     reading("trv-0003", "2026-03-14T07:45:02.113Z", temperature_c=18.5, setpoint_c=20.0, valve_pct=45.0,
             heating=True, window_open=False, battery_low=False)),
    ("tuya_ts0601_system_off.json", "mairie/bureau/trv_tuya",
     reading("trv-0003", "2026-03-14T07:30:00Z", temperature_c=16.5, setpoint_c=5.0, valve_pct=0.0,
             heating=False, window_open=False, battery_low=True)),
    # Aqara E1: window_detection true (feature) beside window_open true (state); no valve position
    ("aqara_srts_a01.json", "mairie/accueil/trv_aqara",
     reading("trv-0004", "2026-03-14T07:41:27.500Z", temperature_c=20.5, setpoint_c=21.0, window_open=True,
             battery_pct=91.0)),
    # Bosch BTH-RA: window_detection "ON" only, the device detects nothing itself
    ("bosch_bth_ra.json", "mairie/accueil/trv_bosch",
     reading("trv-0005", "2026-03-14T07:44:00Z", temperature_c=19.2, setpoint_c=21.0, valve_pct=60.0,
             heating=True, battery_pct=70.0)),
    # Sonoff TRVZB: open_window "ON" is a feature switch; valve_opening_degree is a limit, not a position
    ("sonoff_trvzb.json", "mairie/archives/trv_sonoff",
     reading("trv-0006", "2026-03-14T07:43:12.250Z", temperature_c=19.8, setpoint_c=20.0, heating=False,
             battery_pct=100.0)),
    # numbers and booleans as text, epoch milliseconds as digits
    ("text_values.json", "mairie/bureau/trv_tuya",
     reading("trv-0003", "2026-03-14T07:30:00.500Z", temperature_c=18.5, setpoint_c=19.0, valve_pct=30.0,
             heating=True, window_open=True, battery_low=False)),
    ("null_fields.json", "mairie/bureau/trv_tuya",
     reading("trv-0003", "2026-03-14T07:20:00Z", setpoint_c=20.0, battery_low=True)),
    ("tuya_ts011f_radiator_plug.json", "mairie/conseil/radiateur_prise",
     reading("hm-0001", "2026-03-14T07:45:30.900Z", power_w=1480.5, energy_kwh=312.44)),
    # device_temperature is the sensor's chip, not the room
    ("aqara_rtcgq11lm_room_occupancy.json", "mairie/conseil/pir",
     reading("rs-0001", "2026-03-14T07:45:02.113Z", occupied=True, battery_pct=91.0)),
    ("aqara_wsdcgq11lm_room.json", "mairie/conseil/thermo",
     reading("rs-0002", "2026-03-14T07:40:11.020Z", temperature_c=20.41, battery_pct=97.0)),
    ("sonoff_snzb02_outdoor.json", "mairie/exterieur",
     reading("out-mairie", "2026-03-14T07:35:00Z", temperature_c=-3.2, battery_pct=74.0)),
    ("linkquality_only.json", "mairie/conseil/trv_1", None),
]
STATUS = [  # checked, then not a reading
    ("availability_online.json", "zigbee2mqtt-heating/mairie/conseil/trv_1/availability"),
    ("availability_legacy.txt", "zigbee2mqtt-heating/mairie/exterieur/availability"),
    ("bridge_state.json", "zigbee2mqtt-heating/mairie/bridge/state"),
]


@pytest.mark.parametrize("name,friendly,expected", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_payloads(name, friendly, expected):
    got = DECODER.decode(f"zigbee2mqtt-heating/{friendly}", (TESTDATA / name).read_bytes(), RECEIVED)
    assert got == ([] if expected is None else [expected])
    assert all(r.time.tzinfo == UTC for r in got)


@pytest.mark.parametrize("name,topic", STATUS, ids=[s[0] for s in STATUS])
def test_availability_and_bridge_state_are_not_readings(name, topic):
    assert DECODER.decode(topic, (TESTDATA / name).read_bytes(), RECEIVED) == []


def test_every_sample_file_is_in_a_table():
    assert {p.name for p in TESTDATA.iterdir()} == {s[0] for s in SAMPLES} | {s[0] for s in STATUS}


@pytest.mark.parametrize("body,expected", [
    (b'{"window_open_internal":"external_open"}', True), (b'{"window_open_internal":"hold"}', False),
    (b'{"window_open_internal":3}', True), (b'{"window_open_internal":"1"}', False),
    (b'{"window_open_internal":"quarantine","battery":50}', None),
    (b'{"window_open":"OFF","window_open_internal":"open"}', False),   # the boolean state wins
    (b'{"window_detection":true,"battery":50}', None), (b'{"window_detection":"ON","battery":50}', None),
    (b'{"open_window":"ON","battery":50}', None), (b'{"window_open_external":true,"battery":50}', None),
])
def test_window_state_is_read_from_states_never_from_feature_switches(body, expected):
    [r] = DECODER.decode("zigbee2mqtt-heating/mairie/conseil/trv_1", body, RECEIVED)
    assert r.window_open is expected


@pytest.mark.parametrize("body,field,value", [
    (b'{"pi_heating_demand":"12","position":40}', "valve_pct", 40.0),        # position first
    (b'{"current_heating_setpoint":19,"occupied_heating_setpoint":20.5}', "setpoint_c", 20.5),
    (b'{"temperature":18,"local_temperature":21}', "temperature_c", 21.0),
    (b'{"running_state":"fan_only"}', "heating", False), (b'{"running_state":" Idle "}', "heating", False),
    (b'{"system_mode":"heat","battery":9}', "heating", None),
    (b'{"presence":"true"}', "occupied", True), (b'{"occupancy":false}', "occupied", False),
    (b'{"battery_low":"ON"}', "battery_low", True),
])
def test_field_variants(body, field, value):
    [r] = DECODER.decode("zigbee2mqtt-heating/mairie/conseil/trv_1", body, RECEIVED)
    assert getattr(r, field) == value


def test_time_is_reception_time_without_last_seen():
    [r] = DECODER.decode("zigbee2mqtt-heating/mairie/conseil/thermo", b'{"temperature":20}', RECEIVED)
    assert r.time == RECEIVED


@pytest.mark.parametrize("topic", [
    "zigbee2mqtt-heating/mairie/bridge/info", "zigbee2mqtt-heating/bridge/devices",
    "zigbee2mqtt-heating/mairie/conseil/trv_1/set", "zigbee2mqtt-heating/mairie/conseil/trv_1/set/system_mode",
    "zigbee2mqtt-heating/mairie/conseil/trv_1/get",
])
def test_bridge_and_command_topics_are_not_reports(topic):
    assert DECODER.decode(topic, b'{"occupied_heating_setpoint":30}', RECEIVED) == []


REFUSALS = [
    ("mairie/conseil/trv_1", b"\xff", "not_utf8", "UTF-8"),
    ("mairie/conseil/trv_1", b"local_temperature=19", "not_json", "not JSON"),
    ("mairie/conseil/trv_1", b"[19.5]", "not_object", "JSON object"),
    ("mairie/grenier/trv_9", b'{"local_temperature":19}', "unknown_device", "'mairie/grenier/trv_9'"),
    ("mairie/conseil/trv_1", b'{"local_temperature":"warm"}', "bad_field", "local_temperature"),
    ("mairie/conseil/trv_1", b'{"local_temperature":true}', "bad_field", "boolean"),
    ("mairie/conseil/trv_1", b'{"local_temperature":150}', "bad_field", "above 100"),
    ("mairie/conseil/trv_1", b'{"occupied_heating_setpoint":-5}', "bad_field", "below 0"),
    ("mairie/conseil/trv_1", b'{"pi_heating_demand":101}', "bad_field", "pi_heating_demand"),
    ("mairie/conseil/trv_1", b'{"position":"NaN"}', "bad_field", "position"),
    ("mairie/conseil/trv_1", b'{"battery":-1}', "bad_field", "battery"),
    ("mairie/conseil/radiateur_prise", b'{"power":-20}', "bad_field", "power"),
    ("mairie/conseil/radiateur_prise", b'{"energy":"lots"}', "bad_field", "energy"),
    ("mairie/conseil/trv_1", b'{"running_state":"boost"}', "bad_state", "running_state"),
    ("mairie/conseil/trv_1", b'{"running_state":1}', "bad_state", "running_state"),
    ("mairie/conseil/trv_1", b'{"window_open":"maybe"}', "bad_state", "window_open"),
    ("mairie/conseil/trv_1", b'{"window_open_internal":"ajar"}', "bad_state", "window_open_internal"),
    ("mairie/conseil/trv_1", b'{"window_open_internal":7}', "bad_state", "window_open_internal"),
    ("mairie/conseil/pir", b'{"occupancy":2}', "bad_state", "occupancy"),
    ("mairie/conseil/trv_1", b'{"battery_low":"low"}', "bad_state", "battery_low"),
    ("mairie/conseil/trv_1", b'{"local_temperature":19,"last_seen":"hier"}', "bad_time", "last_seen"),
    ("mairie/conseil/trv_1", b'{"local_temperature":19,"last_seen":"2026-03-14T07:45:02"}', "bad_time", "offset"),
    ("mairie/conseil/trv_1", b'{"local_temperature":19,"last_seen":"2026-03-14T09:00:00Z"}', "future_time",
     "after reception"),
    ("mairie/conseil/trv_1/availability", b'{"state":"asleep"}', "bad_state", "online"),
]


@pytest.mark.parametrize("friendly,body,kind,words", REFUSALS, ids=[f"{r[2]}-{i}" for i, r in enumerate(REFUSALS)])
def test_refusals_name_their_reason(friendly, body, kind, words):
    with pytest.raises(DecodeError) as err:
        DECODER.decode(f"zigbee2mqtt-heating/{friendly}", body, RECEIVED)
    assert err.value.kind == kind
    assert words in str(err.value)


def test_topic_outside_the_base_is_refused_and_base_is_configurable():
    with pytest.raises(DecodeError) as err:
        DECODER.decode("zigbee2mqtt/mairie/conseil/trv_1", b'{"local_temperature":19}', RECEIVED)
    assert err.value.kind == "bad_topic"
    bound = get_decoder("zigbee2mqtt_heating").bind(DEVICES.get, "site/chauffage")
    [r] = bound.decode("site/chauffage/mairie/conseil/trv_1", b'{"local_temperature":19}', RECEIVED)
    assert r.device_id == "trv-0001"
    with pytest.raises(ValueError, match="base_topic"):
        Zigbee2MqttHeatingDecoder(DEVICES.get, "zigbee2mqtt-heating/#")


def test_registered_decoder_is_unbound_and_future_tolerance_is_configurable():
    with pytest.raises(RuntimeError, match="bind"):
        get_decoder("zigbee2mqtt_heating").decode("zigbee2mqtt-heating/x", b"{}", RECEIVED)
    late = (RECEIVED + timedelta(minutes=30)).isoformat().encode()
    dec = Zigbee2MqttHeatingDecoder(DEVICES.get, max_future_s=3600)
    [r] = dec.decode("zigbee2mqtt-heating/mairie/conseil/trv_1", b'{"position":5,"last_seen":"%s"}' % late, RECEIVED)
    assert r.time == RECEIVED + timedelta(minutes=30)


# -- the decoder registry's protocol -------------------------------------------------------------
def test_record_types_and_lookups_of_the_built_in_decoders():
    assert record_types(get_decoder("wmbusmeters")) == (MeterReading,)
    assert record_types(get_decoder("zigbee2mqtt")) == (SensorEvent,)
    assert record_types(get_decoder("zigbee2mqtt_heating")) == (HeatingReading,)
    assert record_types(get_decoder("tts_v3")) == (MeterReading, HeatingReading)
    assert [lookup_of(get_decoder(n)) for n in ("native", "zigbee2mqtt", "zigbee2mqtt_heating", "chirpstack_v4")] == [
        None, "home_sensor", "heating_device", "lorawan_device"]


class _Fake:
    def __init__(self, **attrs):
        self.name = "test-fake"
        self.__dict__.update(attrs)

    def decode(self, topic, payload, received_at):
        return []


@pytest.mark.parametrize("attrs,words", [
    ({"yields": (MeterReading, SensorEvent), "lookup": "home_sensor", "bind": lambda *a: None}, "nothing else"),
    ({"yields": HeatingReading}, "names its registry lookup"),
    ({"yields": HeatingReading, "lookup": "heating_device"}, "needs bind"),
    ({"yields": HeatingReading, "lookup": "by_room", "bind": lambda *a: None}, "lookup must be one of"),
    ({"yields": (MeterReading, str)}, "yields must be one of"),
    ({"yields": ()}, "yields must be one of"),
])
def test_register_refuses_an_incoherent_decoder(attrs, words):
    with pytest.raises(ValueError, match=words):
        register(_Fake(**attrs))
