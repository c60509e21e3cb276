"""Payload decoders: every sample payload in ingest/decoders/testdata/ and every refusal."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from vigie.ingest.decoders import DecodeError, decoder_names, get_decoder, register
from vigie.records import MeterReading

UTC = timezone.utc
TESTDATA = Path(__file__).resolve().parents[1] / "ingest" / "decoders" / "testdata"
RECEIVED = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# (sample file, decoder, expected readings as (meter_id, time, index_m3, flow_l_per_h,
#  battery_life_y, alarms, status_raw))
SAMPLES = [
    ("wmbusmeters/kamwater.json", "wmbusmeters",
     [("71234567", "2026-03-14T07:42:10Z", 152.417, None, None, ("LEAK",), "LEAK")]),
    ("wmbusmeters/kamwater_nulls.json", "wmbusmeters",
     [("71234569", "2026-03-14T07:43:02Z", 20.015, None, None, (), "OK")]),
    ("wmbusmeters/kamwater_error_flags.json", "wmbusmeters",
     [("23800417", "2026-03-14T07:46:12Z", 3.871, 35.0, None, ("ERROR",), "ERROR_FLAGS_800")]),
    ("wmbusmeters/multical21.json", "wmbusmeters",
     [("76300812", "2026-03-14T07:44:51Z", 6.411, None, None, ("DRY",), "DRY")]),
    ("wmbusmeters/flowiq2200.json", "wmbusmeters",
     [("52700931", "2026-03-14T07:45:30Z", 44.206, 1835.0, None, ("BURST", "REVERSE_FLOW"), "REVERSE BURST")]),
    ("wmbusmeters/izar.json", "wmbusmeters",
     [("2a31f0c4", "2026-03-14T07:42:31Z", 87.315, None, 11.5, ("LEAK",), "leakage")]),
    ("wmbusmeters/izar_alarms.json", "wmbusmeters",
     [("2a31f0d7", "2026-03-14T07:47:02Z", 412.08, None, 6.0, ("BLOCKED", "REVERSE_FLOW", "TAMPER"),
       "meter_blocked,back_flow,sensor_fraud")]),
    ("wmbusmeters/izar_general_alarm.json", "wmbusmeters",
     [("2a31f0e2", "2026-03-14T07:47:40Z", 55.004, None, 9.5, ("ERROR",), "general_alarm")]),
    ("wmbusmeters/izarv2.json", "wmbusmeters",
     [("2124e58c", "2026-03-14T07:48:15Z", 38.944, None, 10.0, ("BLOCKED", "LEAK"),
       "LEAKAGE METER_BLOCKED UNDERFLOW")]),
    # PREV_LEAKAGE is a past alarm: kept in the raw status, not flagged.
    ("wmbusmeters/izarv2_prev_leakage.json", "wmbusmeters",
     [("48500912", "2026-03-14T07:49:03Z", 521.602, None, 9.0, (), "PREV_LEAKAGE")]),
    ("wmbusmeters/iperl.json", "wmbusmeters",
     [("12349901", "2026-03-14T07:50:20Z", 123.529, None, None, (), None)]),
    # Leading zeros are part of the id.
    ("wmbusmeters/apator162.json", "wmbusmeters",
     [("00531288", "2026-03-14T07:51:44Z", 51.33, None, None, (), None)]),
    ("wmbusmeters/itron.json", "wmbusmeters",
     [("18000893", "2026-03-14T07:52:05Z", 521.277, 4.0, None, ("LOW_BATTERY",), "POWER_LOW")]),
    # Hydrus reports reverse flow as a negative flow.
    ("wmbusmeters/hydrus.json", "wmbusmeters",
     [("64641907", "2026-03-14T07:53:37Z", 296.789, -2.0, 9.240436, (), "OK")]),
    ("native/single.json", "native",
     [("vg-000123", "2026-03-14T07:42:10Z", 152.417, 12.0, None, ("LEAK",), "leak 1-8 h")]),
    ("native/batch.json", "native",
     [("vg-000124", "2026-03-14T07:00:00Z", 10.0, None, None, (), None),
      ("vg-000124", "2026-03-14T07:15:00Z", 10.004, 16.0, None, (), None),
      ("0042", "2026-03-14T07:15:00.250Z", 3.5, None, 7.5, ("LOW_BATTERY", "TAMPER"), None)]),
]


@pytest.mark.parametrize("name,decoder,expected", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_payloads(name, decoder, expected):
    readings = get_decoder(decoder).decode("wmbusmeters/x" if decoder == "wmbusmeters" else "vigie/water/x",
                                           (TESTDATA / name).read_bytes(), RECEIVED)
    got = [(r.meter_id, r.time, r.index_m3, r.flow_l_per_h, r.battery_life_y, r.alarms, r.status_raw)
           for r in readings]
    assert got == [(m, t(ts), i, f, b, a, s) for m, ts, i, f, b, a, s in expected]
    assert all(r.source == decoder and r.time.tzinfo == UTC for r in readings)


def test_every_sample_file_is_in_the_table():
    listed = {s[0] for s in SAMPLES} | {"wmbusmeters/bridge_state.txt"}
    # Decoders bound to the registry have test files of their own: tests/test_decoder_zigbee2mqtt.py,
    # tests/test_decoder_heating.py (zigbee2mqtt_heating), tests/test_decoder_lorawan.py.
    on_disk = {str(p.relative_to(TESTDATA)) for p in TESTDATA.rglob("*")
               if p.is_file() and p.parent.name not in ("zigbee2mqtt", "zigbee2mqtt_heating", "tts_v3",
                                                        "chirpstack_v4")}
    assert on_disk == listed


def test_native_battery_pct():
    (r,) = get_decoder("native").decode("vigie/water/x", (TESTDATA / "native/single.json").read_bytes(), RECEIVED)
    assert r.battery_pct == 87.0


@pytest.mark.parametrize("topic,payload", [
    ("wmbusmeters/bridge/state", (TESTDATA / "wmbusmeters/bridge_state.txt").read_bytes()),
    ("wmbusmeters/bridge/state", b"offline"),
    ("wmbusmeters/bridge/state", b'{"state":"online"}'),
    ("wmbusmeters/Apt12_Cold", b"offline\n"),
])
def test_bridge_state_is_not_a_reading(topic, payload):
    assert get_decoder("wmbusmeters").decode(topic, payload, RECEIVED) == []


def wm(**fields) -> bytes:
    """A kamwater telegram with ``fields`` replaced (None → key removed)."""
    import json

    base = {"_": "telegram", "media": "water", "meter": "kamwater", "name": "Apt", "id": "71234567",
            "total_m3": 12.5, "status": "OK", "timestamp": "2026-03-14T07:42:10Z"}
    for k, v in fields.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return json.dumps(base).encode()


@pytest.mark.parametrize("fields,expect", [
    ({"total_m3": "12.5"}, 12.5),
    ({"total_m3": 0}, 0.0),
    ({"total_m3": " 7e2 "}, 700.0),
])
def test_index_as_number_or_decimal_text(fields, expect):
    (r,) = get_decoder("wmbusmeters").decode("wmbusmeters/x", wm(**fields), RECEIVED)
    assert r.index_m3 == expect


@pytest.mark.parametrize("stamp,expect", [
    ("2026-03-14T07:42:10Z", "2026-03-14T07:42:10+00:00"),
    ("2026-03-14T08:42:10+01:00", "2026-03-14T07:42:10+00:00"),
    ("2026-03-14T07:42:10.5Z", "2026-03-14T07:42:10.500000+00:00"),
    ("2026-03-14 07:42:10", "2026-03-14T07:42:10+00:00"),   # no offset: the field is UTC
    ("2026-03-14T08:04:59Z", "2026-03-14T08:04:59+00:00"),  # within max_future_s of reception
])
def test_wmbusmeters_timestamp_forms(stamp, expect):
    (r,) = get_decoder("wmbusmeters").decode("wmbusmeters/x", wm(timestamp=stamp), RECEIVED)
    assert r.time.isoformat() == expect


def test_missing_timestamp_is_reception_time():
    (r,) = get_decoder("wmbusmeters").decode("wmbusmeters/x", wm(timestamp=None), RECEIVED)
    assert r.time == RECEIVED
    (r,) = get_decoder("native").decode("vigie/water/x", b'{"meter_id":"a","index_m3":1}', RECEIVED)
    assert r.time == RECEIVED


def test_volume_flow_and_battery_y_fields():
    (r,) = get_decoder("wmbusmeters").decode(
        "wmbusmeters/x", wm(volume_flow_m3h=0.25, battery_y=4.5, meter="izarv2"), RECEIVED)
    assert r.flow_l_per_h == 250.0 and r.battery_life_y == 4.5


# (decoder, payload, kind, words the reason must contain)
ERRORS = [
    ("wmbusmeters", b"\xff\xfe{}", "not_utf8", "not UTF-8"),
    ("wmbusmeters", b"{not json", "not_json", "not JSON"),
    ("wmbusmeters", b"", "not_json", "not JSON"),
    ("wmbusmeters", b"[" * 100_000, "not_json", "nested too deeply"),
    ("wmbusmeters", b"[1, 2]", "not_object", "JSON object"),
    ("wmbusmeters", b'"text"', "not_object", "JSON object"),
    ("wmbusmeters", wm(total_m3=None), "bad_index", "total_m3 is missing"),
    ("wmbusmeters", wm(total_m3=None)[:-1] + b', "total_m3": null}', "bad_index", "total_m3 is null"),
    ("wmbusmeters", wm(total_m3="abc"), "bad_index", "not a number"),
    ("wmbusmeters", wm(total_m3="nan"), "bad_index", "not a number"),
    ("wmbusmeters", wm(total_m3=True), "bad_index", "boolean"),
    ("wmbusmeters", wm(total_m3=-0.001), "bad_index", "below 0"),
    ("wmbusmeters", wm(total_m3=1e29), "bad_index", "above 1e+09"),
    ("wmbusmeters", wm(timestamp="1970-01-01T00:00:00Z"), "bad_time", "gateway clock reset"),
    ("wmbusmeters", wm(total_m3=None)[:-1] + b', "total_m3": NaN}', "bad_index", "finite"),
    ("wmbusmeters", wm(total_m3=None)[:-1] + b', "total_m3": Infinity}', "bad_index", "finite"),
    ("wmbusmeters", wm(total_m3="1e999"), "bad_index", "finite"),
    ("wmbusmeters", wm(id=None), "bad_id", "id is missing"),
    ("wmbusmeters", wm(id=71234567), "bad_id", "must be a JSON string"),
    ("wmbusmeters", wm(id=""), "bad_id", "empty"),
    ("wmbusmeters", wm(id="7123\n4567"), "bad_id", "control"),
    ("wmbusmeters", wm(id="x" * 65), "bad_id", "longer than 64"),
    ("wmbusmeters", wm(timestamp="yesterday"), "bad_time", "not an ISO 8601 time"),
    ("wmbusmeters", wm(timestamp=1773474130), "bad_time", "ISO 8601 string"),
    ("wmbusmeters", wm(timestamp="2026-03-14T08:05:01Z"), "future_time", "301 s after reception"),
    ("wmbusmeters", wm(timestamp="2036-03-14T08:00:00Z"), "future_time", "after reception"),
    ("wmbusmeters", wm(flow_m3h="fast"), "bad_field", "flow_m3h is not a number"),
    ("wmbusmeters", wm(remaining_battery_life_y=-1), "bad_field", "below 0"),
    ("wmbusmeters", wm(status=4), "bad_field", "status must be text"),
    ("native", b"\x80", "not_utf8", "not UTF-8"),
    ("native", b"meter=1", "not_json", "not JSON"),
    ("native", b"42", "not_object", "object or array"),
    ("native", b"[]", "not_object", "empty batch"),
    ("native", b'[{"meter_id":"a","index_m3":1}, 3]', "not_object", "[1] expected a JSON object"),
    ("native", b'{"index_m3":1}', "bad_id", "meter_id is missing"),
    ("native", b'{"meter_id":12,"index_m3":1}', "bad_id", "must be a JSON string"),
    ("native", b'{"meter_id":"a"}', "bad_index", "index_m3 is missing"),
    ("native", b'{"meter_id":"a","index_m3":"abc"}', "bad_index", "not a number"),
    ("native", b'{"meter_id":"a","index_m3":-1}', "bad_index", "below 0"),
    ("native", b'[{"meter_id":"a","index_m3":1},{"meter_id":"b","index_m3":-2}]', "bad_index", "[1] index_m3"),
    ("native", b'{"meter_id":"a","index_m3":1,"time":"2026-03-14T07:00:00"}', "bad_time", "no UTC offset"),
    ("native", b'{"meter_id":"a","index_m3":1,"time":"14/03/2026"}', "bad_time", "not an ISO 8601"),
    ("native", b'{"meter_id":"a","index_m3":1,"time":"2026-03-14T09:00:00Z"}', "future_time", "3600 s"),
    ("native", b'{"meter_id":"a","index_m3":1,"battery_pct":120}', "bad_field", "above 100"),
    ("native", b'{"meter_id":"a","index_m3":1,"alarms":"LEAK"}', "bad_field", "array of strings"),
    ("native", b'{"meter_id":"a","index_m3":1,"alarms":["LEAK","FIRE"]}', "bad_field", "unknown alarm name(s) FIRE"),
    ("native", b'{"meter_id":"a","index_m3":1,"status":{"ok":true}}', "bad_field", "status must be text"),
]


@pytest.mark.parametrize("decoder,payload,kind,words", ERRORS,
                         ids=[f"{d}-{k}-{i}" for i, (d, _, k, _) in enumerate(ERRORS)])
def test_refusals(decoder, payload, kind, words):
    topic = "wmbusmeters/Apt" if decoder == "wmbusmeters" else "vigie/water/gw1"
    with pytest.raises(DecodeError) as info:
        get_decoder(decoder).decode(topic, payload, RECEIVED)
    assert info.value.kind == kind
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_reason_never_holds_the_whole_payload():
    payload = wm(total_m3="x" * 500)
    with pytest.raises(DecodeError) as info:
        get_decoder("wmbusmeters").decode("wmbusmeters/x", payload, RECEIVED)
    assert len(str(info.value)) < 120


def test_max_future_is_configurable():
    from vigie.ingest.decoders.wmbusmeters import WmbusmetersDecoder

    late = wm(timestamp="2026-03-14T08:10:00Z")
    (r,) = WmbusmetersDecoder(max_future_s=3600).decode("wmbusmeters/x", late, RECEIVED)
    assert r.time == t("2026-03-14T08:10:00Z")
    with pytest.raises(DecodeError):
        WmbusmetersDecoder().decode("wmbusmeters/x", late, RECEIVED)


def test_registry_lookup_and_registration():
    assert {"wmbusmeters", "native"} <= set(decoder_names())
    with pytest.raises(KeyError) as info:
        get_decoder("lorawan")
    assert "native" in str(info.value) and "wmbusmeters" in str(info.value)

    class Constant:
        name = "test-constant"

        def decode(self, topic, payload, received_at):
            return [MeterReading("c1", received_at, float(payload.decode()), source=self.name)]

    try:
        register(Constant())
        assert get_decoder("test-constant").decode("t", b"3", RECEIVED)[0].index_m3 == 3.0
        assert "test-constant" in decoder_names()
    finally:
        from vigie.ingest import decoders

        decoders._REGISTRY.pop("test-constant", None)
