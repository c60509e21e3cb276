"""LoRaWAN decoders tts_v3 and chirpstack_v4: every sample in ingest/decoders/testdata/{tts_v3,chirpstack_v4}/
and every refusal, with the registry's device types (FieldMapping) as the lookup gives them."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from vigie.heating_registry import FieldMapping, HeatingDeviceInfo, LorawanDeviceInfo
from vigie.ingest.decoders import DecodeError, get_decoder
from vigie.ingest.decoders.chirpstack_v4 import ChirpstackV4Decoder
from vigie.ingest.decoders.tts_v3 import TtsV3Decoder
from vigie.records import HeatingDeviceKind, HeatingReading, MeterReading

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata"
RECEIVED = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)

# Device types as a registry file would define them (docs/registry.md, "LoRaWAN devices").
AXIOMA_W1 = FieldMapping("water", {"index_m3": ("current_volume_m3", 1.0), "time": ("timestamp_utc", 1.0)},
                         {"leakage": "LEAK", "burst": "BURST", "backflow": "REVERSE_FLOW",
                          "low_battery": "LOW_BATTERY"})
# mbusparser.js gives its dates without a zone: not mapped, the network server's time is used.
FLOWIQ = FieldMapping("water", {"index_m3": ("latestVolume", 1.0)},
                      {"values.1.Value": "LEAK", "values.2.Value": "BURST", "values.3.Value": "DRY"})
WT101 = FieldMapping("heating", {"temperature_c": ("temperature", 1.0), "setpoint_c": ("target_temperature", 1.0),
                                 "valve_pct": ("valve_opening", 1.0), "battery_pct": ("battery", 1.0)})


def heating_device(device_id: str) -> HeatingDeviceInfo:
    return HeatingDeviceInfo(device_id, HeatingDeviceKind.TRV, "b-mairie", "r-conseil")


DEVICES = {  # HeatingDirectory.by_dev_eui as the decoders call it (lower-case DevEUI)
    "70b3d5fffe0a1b2c": LorawanDeviceInfo("70b3d5fffe0a1b2c", "axioma-w1", AXIOMA_W1, "axw1-000123", None),
    "70b3d5fffe0a1b2d": LorawanDeviceInfo("70b3d5fffe0a1b2d", "axioma-w1", AXIOMA_W1, "axw1-000124", None),
    "0025ca0a00015e3f": LorawanDeviceInfo("0025ca0a00015e3f", "flowiq", FLOWIQ, "fiq-000931", None),
    "24e124714c321987": LorawanDeviceInfo("24e124714c321987", "wt101", WT101, None, heating_device("trv-0101")),
    "24e124714c3219a0": LorawanDeviceInfo("24e124714c3219a0", "wt101", WT101, None, heating_device("trv-0102")),
}
TTS = TtsV3Decoder(DEVICES.get)
CHIRPSTACK = ChirpstackV4Decoder(DEVICES.get)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def water(meter: str, time: str, index: float, alarms=(), source="tts_v3") -> MeterReading:
    return MeterReading(meter, t(time), index, alarms=tuple(alarms), source=source)


def heat(device: str, time: str, source="tts_v3", **values) -> HeatingReading:
    return HeatingReading(device, t(time), source=source, **values)


TTS_TOPIC = "v3/{app}@ttn/devices/{device}/up"
CS_TOPIC = "application/5f1c7d2e-8b3a-4c6d-9e0f-1a2b3c4d5e6f/device/{eui}/event/up"
# (decoder, sample, topic, expected records)
SAMPLES = [
    (TTS, "tts_v3/axioma_w1.json", TTS_TOPIC.format(app="mairie-eau", device="axw1-000123"),
     [water("axw1-000123", "2026-03-14T07:00:00Z", 152.471, ["LEAK"])]),
    # no mapped time: the network server's uplink_message.received_at (nanoseconds cut to µs)
    (TTS, "tts_v3/kamstrup_flowiq_mbusparser.json", TTS_TOPIC.format(app="mairie-eau", device="flowiq-000931"),
     [water("fiq-000931", "2026-03-14T07:51:10.019283Z", 44.206)]),
    (TTS, "tts_v3/milesight_wt101.json", TTS_TOPIC.format(app="mairie-chauffage", device="wt101-conseil-2"),
     [heat("trv-0101", "2026-03-14T07:40:21.541029Z", temperature_c=19.6, setpoint_c=21.0, valve_pct=35.0,
           battery_pct=97.0)]),
    # a configuration frame: none of the mapped fields
    (TTS, "tts_v3/milesight_wt101_device_info.json", TTS_TOPIC.format(app="mairie-chauffage", device="wt101-conseil-2"),
     []),
    (TTS, "tts_v3/simulated.json", TTS_TOPIC.format(app="mairie-eau", device="axw1-000123"), []),
    # Open Source (no tenant), no uplink_message.received_at: the top-level one; numbers as text, nulls
    (TTS, "tts_v3/open_source_nulls.json", "v3/chauffage/devices/wt101-accueil-1/up",
     [heat("trv-0102", "2026-03-14T07:42:00Z", temperature_c=18.9, battery_pct=80.0)]),
    (CHIRPSTACK, "chirpstack_v4/axioma_w1.json", CS_TOPIC.format(eui="70b3d5fffe0a1b2c"),
     [water("axw1-000123", "2026-03-14T07:00:00Z", 152.471, ["LEAK"], "chirpstack_v4")]),
    (CHIRPSTACK, "chirpstack_v4/milesight_wt101.json", CS_TOPIC.format(eui="24e124714c321987"),
     [heat("trv-0101", "2026-03-14T07:40:21.541029Z", "chirpstack_v4", temperature_c=19.6, setpoint_c=21.0,
           valve_pct=35.0, battery_pct=97.0)]),
    # index and booleans as text, null time: the event's time
    (CHIRPSTACK, "chirpstack_v4/axioma_w1_text_values.json", CS_TOPIC.format(eui="70b3d5fffe0a1b2d"),
     [water("axw1-000124", "2026-03-14T07:58:11.010Z", 87.315, ["BURST"], "chirpstack_v4")]),
]
NO_DECODED = [(TTS, "tts_v3/no_decoded_payload.json", TTS_TOPIC.format(app="mairie-eau", device="axw1-000123")),
              (CHIRPSTACK, "chirpstack_v4/no_object.json", CS_TOPIC.format(eui="24e124714c321987"))]


@pytest.mark.parametrize("decoder,name,topic,expected", SAMPLES, ids=[s[1] for s in SAMPLES])
def test_sample_payloads(decoder, name, topic, expected):
    got = decoder.decode(topic, (TESTDATA / name).read_bytes(), RECEIVED)
    assert got == expected
    assert all(r.time.tzinfo == UTC for r in got)


@pytest.mark.parametrize("decoder,name,topic", NO_DECODED, ids=[s[1] for s in NO_DECODED])
def test_a_frame_without_decoded_payload_is_refused(decoder, name, topic):
    with pytest.raises(DecodeError) as err:
        decoder.decode(topic, (TESTDATA / name).read_bytes(), RECEIVED)
    assert err.value.kind == "no_decoded_payload"


def test_every_sample_file_is_in_a_table():
    listed = {s[1] for s in SAMPLES} | {s[1] for s in NO_DECODED}
    on_disk = {str(p.relative_to(TESTDATA)) for d in ("tts_v3", "chirpstack_v4") for p in (TESTDATA / d).iterdir()}
    assert on_disk == listed


def tts(**changes) -> bytes:
    """The Axioma TTS sample with top-level keys replaced and ``decoded`` merged into its payload
    (None removes a key)."""
    obj = json.loads((TESTDATA / "tts_v3/axioma_w1.json").read_text())
    decoded = changes.pop("decoded", {})
    for k, v in changes.items():
        obj.pop(k, None) if v is None else obj.__setitem__(k, v)
    for k, v in decoded.items():
        obj["uplink_message"]["decoded_payload"].pop(k, None) if v is None else \
            obj["uplink_message"]["decoded_payload"].__setitem__(k, v)
    return json.dumps(obj).encode()


def ids(**kw) -> dict:
    return {"device_id": "axw1-000123", "dev_eui": "70B3D5FFFE0A1B2C", **kw}


AXW1 = TTS_TOPIC.format(app="mairie-eau", device="axw1-000123")
REFUSALS = [
    (AXW1, b"\xfe", "not_utf8", "UTF-8"),
    (AXW1, b"{", "not_json", "not JSON"),
    (AXW1, b"[]", "not_object", "JSON object"),
    (AXW1, tts(end_device_ids=None), "not_object", "end_device_ids is missing"),
    (AXW1, tts(uplink_message="x"), "not_object", "uplink_message is a str"),
    (AXW1, tts(end_device_ids={"device_id": "axw1-000123"}), "bad_id", "dev_eui is missing"),
    (AXW1, tts(end_device_ids=ids(dev_eui="70B3D5FFFE0A1B")), "bad_id", "16 hex digits"),
    (AXW1, tts(end_device_ids=ids(dev_eui=7)), "bad_id", "16 hex digits"),
    (TTS_TOPIC.format(app="mairie-eau", device="axw1-000999"), tts(), "topic_mismatch", "axw1-000999"),
    (AXW1, tts(end_device_ids=ids(dev_eui="70B3D5FFFE0A0000")), "unknown_device", "70b3d5fffe0a0000"),
    (AXW1, tts(decoded={"current_volume_m3": None}), "mapping_error", "index_m3"),
    (AXW1, tts(decoded={"current_volume_m3": "lots"}), "mapping_error", "current_volume_m3"),
    (AXW1, tts(decoded={"leakage": "sometimes"}), "mapping_error", "leakage"),
    (AXW1, tts(decoded={"current_volume_m3": -1}), "bad_index", "below 0"),
    (AXW1, tts(decoded={"timestamp_utc": "2026-03-14T07:00:00"}), "bad_time", "offset"),
    (AXW1, tts(decoded={"timestamp_utc": "1999-12-31T23:00:00Z"}), "bad_time", "before 2000"),
    (AXW1, tts(decoded={"timestamp_utc": "2026-03-14T09:00:00Z"}), "future_time", "after reception"),
    (AXW1, tts(uplink_message=None), "not_object", "uplink_message is missing"),
]


@pytest.mark.parametrize("topic,body,kind,words", REFUSALS, ids=[f"{r[2]}-{i}" for i, r in enumerate(REFUSALS)])
def test_tts_refusals_name_their_reason(topic, body, kind, words):
    with pytest.raises(DecodeError) as err:
        TTS.decode(topic, body, RECEIVED)
    assert err.value.kind == kind
    assert words in str(err.value)


def test_decoded_payload_of_the_wrong_shape_is_refused():
    obj = json.loads(tts())
    obj["uplink_message"]["decoded_payload"] = [152.4]
    with pytest.raises(DecodeError) as err:
        TTS.decode(AXW1, json.dumps(obj).encode(), RECEIVED)
    assert err.value.kind == "no_decoded_payload"


def chirpstack(**obj_changes) -> bytes:
    obj = json.loads((TESTDATA / "chirpstack_v4/milesight_wt101.json").read_text())
    for k, v in obj_changes.items():
        obj["object"].pop(k, None) if v is None else obj["object"].__setitem__(k, v)
    return json.dumps(obj).encode()


WT = CS_TOPIC.format(eui="24e124714c321987")


@pytest.mark.parametrize("topic,body,kind,words", [
    (CS_TOPIC.format(eui="24e124714c320000"), chirpstack(), "topic_mismatch", "24e124714c320000"),
    (WT, chirpstack(temperature=180), "bad_field", "above 100"),
    (WT, chirpstack(valve_opening=140), "bad_field", "valve_pct"),
    (WT, chirpstack(battery="full"), "mapping_error", "battery"),
    (WT, b'{"deviceInfo":"24e124714c321987"}', "not_object", "deviceInfo"),
    (WT, b'{"deviceInfo":{"devEui":"24e124714c321987"},"object":{"temperature":19},"time":"soon"}', "bad_time",
     "time"),
], ids=["topic_mismatch", "temperature", "valve", "battery_text", "deviceInfo", "time"])
def test_chirpstack_refusals(topic, body, kind, words):
    with pytest.raises(DecodeError) as err:
        CHIRPSTACK.decode(topic, body, RECEIVED)
    assert err.value.kind == kind
    assert words in str(err.value)


def test_an_event_without_time_is_dated_at_reception():
    [r] = CHIRPSTACK.decode(WT, b'{"deviceInfo":{"devEui":"24e124714c321987"},"object":{"temperature":19}}', RECEIVED)
    assert r.time == RECEIVED and r.temperature_c == 19.0


def test_topic_of_another_shape_is_not_checked_and_dev_eui_case_does_not_matter():
    body = (TESTDATA / "chirpstack_v4/milesight_wt101.json").read_bytes()
    assert CHIRPSTACK.decode("lns/site-2/uplinks", body, RECEIVED)[0].device_id == "trv-0101"
    upper = CS_TOPIC.format(eui="24E124714C321987")
    assert CHIRPSTACK.decode(upper, body, RECEIVED)[0].device_id == "trv-0101"


def test_a_mapped_time_in_epoch_seconds_or_milliseconds():
    seconds = FieldMapping("heating", {"temperature_c": ("t", 1.0), "time": ("ts", 1.0)})
    millis = FieldMapping("heating", {"temperature_c": ("t", 1.0), "time": ("ts", 0.001)})
    for mapping, ts in ((seconds, 1773474302), (millis, 1773474302000)):
        info = LorawanDeviceInfo("24e124714c321987", "x", mapping, None, heating_device("trv-0101"))
        dec = ChirpstackV4Decoder({"24e124714c321987": info}.get)
        body = json.dumps({"deviceInfo": {"devEui": "24e124714c321987"}, "object": {"t": 20, "ts": ts}}).encode()
        assert dec.decode(WT, body, RECEIVED)[0].time == t("2026-03-14T07:45:02Z")


def test_registered_decoders_are_unbound_and_future_tolerance_is_configurable():
    for name in ("tts_v3", "chirpstack_v4"):
        with pytest.raises(RuntimeError, match="bind"):
            get_decoder(name).decode("x", b"{}", RECEIVED)
    late = tts(decoded={"timestamp_utc": (RECEIVED + timedelta(minutes=30)).isoformat()})
    [r] = get_decoder("tts_v3").bind(DEVICES.get, None).decode(AXW1, late, RECEIVED + timedelta(minutes=26))
    assert r.time == RECEIVED + timedelta(minutes=30)
    with pytest.raises(DecodeError):
        TTS.decode(AXW1, late, RECEIVED)
    assert TtsV3Decoder(DEVICES.get, max_future_s=3600).decode(AXW1, late, RECEIVED)[0].time == \
        RECEIVED + timedelta(minutes=30)
