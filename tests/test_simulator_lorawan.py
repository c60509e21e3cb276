"""Water meters as LoRaWAN uplinks: the Axioma W1 frame, The Things Stack v3 and ChirpStack v4
envelopes, the registry's ``lorawan:`` section, publishing to a real Mosquitto and the command."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

import services
from vigie.simulators.lorawan import (DEVICE_TYPE, DEVICE_TYPE_MAPPING, LorawanNetwork, airtime_s,
                                      chirpstack_v4_envelope, dev_eui_of, lorawan_messages, status_byte,
                                      tts_v3_envelope, w1_decode, w1_frame, w1_frames, w1_uplinks)
from vigie.simulators.publish import publish_messages
from vigie.simulators.water import (Duplicates, Leak, Replacement, WaterSimConfig, simulate, write_registry)

# The example of the TTN device repository's W1 codec (vendor/axioma/qalcosonic-w1-codec.yaml): its
# input bytes and the codec's output for them.
CODEC_EXAMPLE = bytes([
    0x01, 0xAE, 0xAC, 0x98, 0x6A, 0x00, 0x32, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x03, 0x80, 0x00, 0x54, 0x00, 0x0E, 0x40, 0x05, 0x10, 0x00, 0x48, 0x00, 0x02, 0x40, 0x02, 0x00, 0x00,
    0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])
CODEC_DELTAS_M3 = [0, 0, 0, 0, 0, 0.014, 0.008, 0.021, 0.014, 0.021, 0.001, 0.018, 0.002, 0.009, 0, 0.008,
                   0, 0, 0, 0, 0, 0, 0]
NS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
NS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00$")


@pytest.fixture(scope="module")
def fleet():
    faults = [Leak(3, 30.0, datetime(2026, 11, 3, 10, 0), alarm="LEAK"),
              Leak(4, 400.0, datetime(2026, 11, 3, 14, 0), datetime(2026, 11, 3, 20, 0), alarm="BURST"),
              Replacement(5, datetime(2026, 11, 3, 12, 0)), Duplicates(count=2, meter=7)]
    return simulate(WaterSimConfig(meters=30, days=3, start=date(2026, 11, 2), seed=1, rollover_meters=1,
                                   faults=faults))


def readings_in_publish_order(result):
    return result.readings.iloc[result.publish_order].reset_index(drop=True)


def test_w1_decode_matches_the_codec_example():
    d = w1_decode(CODEC_EXAMPLE)
    assert d["timestamp_unix"] == 1788390574 and d["timestamp_utc"] == "2026-09-02T23:09:34.000Z"
    assert d["status"] == 0 and d["log_volume_m3"] == 5.938
    assert [d[f"delta_{i}_m3"] for i in range(1, 24)] == CODEC_DELTAS_M3
    assert d["history_total_m3"] == 0.116 and d["current_volume_m3"] == 6.054 and d["history_multiplier"] == 0
    assert list(d)[:5] == ["payload_format", "frame_version", "payload_bytes", "timestamp_unix", "timestamp_utc"]
    assert not any(d[k] for k in ("low_battery", "permanent_error", "temporary_error", "pipe_empty", "backflow",
                                  "burst", "leakage", "low_temperature"))
    deltas = [round(x * 1000) for x in CODEC_DELTAS_M3]
    assert w1_frame(1788390574, 0, 5938, deltas) == CODEC_EXAMPLE
    assert w1_frames(np.array([1788390574]), np.array([0]), np.array([5938]),
                     np.array([deltas])).tobytes() == CODEC_EXAMPLE
    with pytest.raises(ValueError, match="51 bytes"):
        w1_decode(CODEC_EXAMPLE[:50])
    with pytest.raises(ValueError, match="outside"):
        w1_frame(0, 0, 0, [16384] + [0] * 22)


def test_alarms_as_w1_status_bits():
    flags = {a: {k for k, v in w1_decode(w1_frame(0, status_byte((a,)), 0, [0] * 23)).items() if v is True}
             for a in ("LEAK", "BURST", "REVERSE_FLOW", "LOW_BATTERY")}
    assert flags == {"LEAK": {"leakage"}, "BURST": {"burst"}, "REVERSE_FLOW": {"backflow"},
                     "LOW_BATTERY": {"low_battery"}}
    assert set(DEVICE_TYPE_MAPPING["alarms"]) == {"leakage", "burst", "backflow", "low_battery"}
    with pytest.raises(ValueError, match="cannot report alarm 'TAMPER'"):
        status_byte(("TAMPER",), "0000abcd")


def test_uplinks_carry_each_reading(fleet):
    rows = readings_in_publish_order(fleet)
    uplinks = list(w1_uplinks(fleet))
    assert len(uplinks) == len(rows) == len(fleet.publish_order)
    replaced = fleet.meters[5].meter_id
    for u, (_, r) in zip(uplinks, rows.iterrows()):
        d = w1_decode(u.frame)
        assert u.meter_id == r["meter_id"] and u.time == r["time"].to_pydatetime()
        assert d["current_volume_m3"] == pytest.approx(r["index_m3"], abs=1e-9)
        assert d["timestamp_unix"] == int(r["time"].timestamp())
        assert d["leakage"] == (r["alarms"] == "LEAK") and d["burst"] == (r["alarms"] == "BURST")
        deltas = [d[f"delta_{i}_m3"] for i in range(1, 24)]
        assert min(deltas) >= 0 and d["log_volume_m3"] >= 0
        if u.meter_id == replaced and r["time"] > datetime(2026, 11, 3, 11, 0, tzinfo=timezone.utc):
            assert d["log_volume_m3"] < 1.0  # the new meter has no history before it
    # The burst (13:00–19:00 UTC) shows in the hourly history of the meter's evening uplinks.
    evening = [w1_decode(u.frame) for u in uplinks if u.meter_id == fleet.meters[4].meter_id
               and datetime(2026, 11, 3, 20, tzinfo=timezone.utc) <= u.time < datetime(2026, 11, 3, 23, tzinfo=timezone.utc)]
    assert evening and all(max(d[f"delta_{i}_m3"] for i in range(1, 24)) >= 0.4 for d in evening)
    # Duplicates give identical uplinks; the f_cnt rises per meter.
    by_meter = {}
    for u in uplinks:
        by_meter.setdefault(u.meter_id, []).append(u)
    dup = fleet.meters[7].meter_id
    seen = [u.f_cnt for u in by_meter[dup]]
    assert len(seen) - len(set(seen)) == 2
    for us in by_meter.values():
        cnt = sorted({u.f_cnt for u in us})
        assert cnt == list(range(cnt[0], cnt[0] + len(cnt)))


def test_tts_v3_envelopes(fleet):
    rows = readings_in_publish_order(fleet)
    net = LorawanNetwork()
    msgs = list(lorawan_messages(fleet, "tts_v3", net))
    assert len(msgs) == len(rows)
    for m, (_, r) in zip(msgs, rows.iterrows()):
        obj = json.loads(m.payload)
        ids = obj["end_device_ids"]
        assert m.topic == f"v3/eau-commune@ttn/devices/{ids['device_id']}/up"
        assert ids["device_id"] == f"axw1-{r['meter_id']}" and ids["application_ids"] == {"application_id": "eau-commune"}
        assert ids["dev_eui"] == dev_eui_of(r["meter_id"]).upper() and re.match(r"^[0-9A-F]{16}$", ids["dev_eui"])
        assert re.match(r"^[0-9A-F]{8}$", ids["dev_addr"])
        assert NS_Z.match(obj["received_at"]) and "simulated" not in obj
        up = obj["uplink_message"]
        assert up["f_port"] == 100 and up["f_cnt"] > 0 and NS_Z.match(up["received_at"])
        assert up["received_at"] < obj["received_at"]
        frame = base64.b64decode(up["frm_payload"])
        assert len(frame) == 51 and up["decoded_payload"] == w1_decode(frame)
        assert up["decoded_payload"]["current_volume_m3"] == pytest.approx(r["index_m3"], abs=1e-9)
        assert up["decoded_payload"]["timestamp_utc"] == r["time"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert obj["received_at"] > up["decoded_payload"]["timestamp_utc"][:19]
        for rx in up["rx_metadata"]:
            assert rx["gateway_ids"]["gateway_id"].startswith("gw-") and re.match(r"^[0-9A-F]{16}$", rx["gateway_ids"]["eui"])
            assert NS_Z.match(rx["time"]) and -140 < rx["rssi"] < -40 and isinstance(rx["snr"], float)
            assert rx.get("channel_index", 1) != 0   # TTS omits zero values
        lora = up["settings"]["data_rate"]["lora"]
        assert lora["bandwidth"] == 125000 and 7 <= lora["spreading_factor"] <= 12
        assert isinstance(up["settings"]["frequency"], str) and up["settings"]["frequency"].startswith("86")
        assert up["consumed_airtime"] == f"{airtime_s(64, lora['spreading_factor']):.6f}s"
        assert m.time == r["time"].to_pydatetime()
    # A real TTS uplink at SF12 with an 11-byte FRMPayload (24-byte PHY payload) said "1.482752s".
    assert f"{airtime_s(24, 12):.6f}" == "1.482752"


def test_chirpstack_v4_envelopes(fleet):
    rows = readings_in_publish_order(fleet)
    net = LorawanNetwork()
    msgs = list(lorawan_messages(fleet, "chirpstack_v4", net))
    app = net.uuid("application")
    for m, (_, r) in zip(msgs, rows.iterrows()):
        obj = json.loads(m.payload)
        eui = dev_eui_of(r["meter_id"])
        assert m.topic == f"application/{app}/device/{eui}/event/up"
        uuid.UUID(obj["deduplicationId"])
        assert NS_OFFSET.match(obj["time"])
        info = obj["deviceInfo"]
        assert info["devEui"] == eui and info["applicationId"] == app and info["deviceName"] == f"axw1-{r['meter_id']}"
        assert {"tenantId", "tenantName", "applicationName", "deviceProfileId", "deviceProfileName", "tags"} <= set(info)
        assert re.match(r"^[0-9a-f]{8}$", obj["devAddr"]) and obj["fPort"] == 100 and obj["fCnt"] > 0
        frame = base64.b64decode(obj["data"])
        expected = w1_decode(frame)
        for k, v in obj["object"].items():
            if isinstance(expected[k], bool) or isinstance(expected[k], str):
                assert v == expected[k]
            else:
                assert isinstance(v, float) and v == expected[k]   # a protobuf Struct's numbers
        assert obj["object"]["current_volume_m3"] == pytest.approx(r["index_m3"], abs=1e-9)
        lora = obj["txInfo"]["modulation"]["lora"]
        assert obj["dr"] == 12 - lora["spreadingFactor"] and lora["codeRate"] == "CR_4_5"
        assert isinstance(obj["txInfo"]["frequency"], int)
        for rx in obj["rxInfo"]:
            assert re.match(r"^[0-9a-f]{16}$", rx["gatewayId"]) and rx["crcStatus"] == "CRC_OK"
            assert NS_OFFSET.match(rx["nsTime"]) and isinstance(rx["uplinkId"], int)
    assert '"frame_version":1.0' in msgs[0].payload.decode()
    dup = [m.payload for m in msgs if f"/{dev_eui_of(fleet.meters[7].meter_id)}/" in m.topic]
    assert len(dup) - len(set(dup)) == 2


def test_registry_section_matches_the_messages(fleet, tmp_path):
    path = tmp_path / "registry.yaml"
    write_registry(fleet, path, lorawan=True)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(doc) == ["households", "lorawan"]
    assert doc["lorawan"]["device_types"] == {DEVICE_TYPE: {
        "family": "water", "fields": {"index_m3": "current_volume_m3", "time": "timestamp_utc"},
        "alarms": {"leakage": "LEAK", "burst": "BURST", "backflow": "REVERSE_FLOW", "low_battery": "LOW_BATTERY"}}}
    devices = doc["lorawan"]["devices"]
    meters = {m["id"] for h in doc["households"] for m in h["meters"]}
    assert {d["meter"] for d in devices} == meters and all(d["type"] == DEVICE_TYPE for d in devices)
    assert all(re.match(r"^[0-9a-f]{16}$", d["dev_eui"]) for d in devices)
    euis = {d["dev_eui"] for d in devices}
    assert len(euis) == len(devices)
    topics = {m.topic.split("/")[3] for m in lorawan_messages(fleet, "chirpstack_v4")}
    assert topics == euis
    write_registry(fleet, tmp_path / "plain.yaml")
    assert list(yaml.safe_load((tmp_path / "plain.yaml").read_text(encoding="utf-8"))) == ["households"]


def test_registry_and_decoders_read_the_uplinks_back(fleet, tmp_path, sqlite_url):
    """With part R's loader and part I's decoders: every uplink of both servers is the simulated reading."""
    heating_registry = pytest.importorskip("vigie.heating_registry")
    tts = pytest.importorskip("vigie.ingest.decoders.tts_v3")
    chirp = pytest.importorskip("vigie.ingest.decoders.chirpstack_v4")
    from vigie.db import make_engine, make_sessionmaker
    from vigie.registry import load_registry_file

    path = tmp_path / "registry.yaml"
    write_registry(fleet, path, lorawan=True)
    session = make_sessionmaker(make_engine(sqlite_url))()
    load_registry_file(session, path)
    session.commit()
    directory = heating_registry.HeatingDirectory(make_sessionmaker(make_engine(sqlite_url)))
    rows = readings_in_publish_order(fleet)
    for fmt, decoder in (("tts_v3", tts.TtsV3Decoder(directory.by_dev_eui)),
                         ("chirpstack_v4", chirp.ChirpstackV4Decoder(directory.by_dev_eui))):
        for m, (_, r) in zip(lorawan_messages(fleet, fmt), rows.iterrows()):
            (got,) = decoder.decode(m.topic, m.payload, m.time + timedelta(seconds=30))
            assert got.meter_id == r["meter_id"] and got.time == r["time"].to_pydatetime()
            assert got.index_m3 == pytest.approx(r["index_m3"], abs=1e-9)
            assert got.alarms == (tuple(r["alarms"].split()) if r["alarms"] else ())


def test_publish_both_formats_to_mosquitto(fleet, mosquitto):
    for fmt, topic_filter in (("tts_v3", "v3/#"), ("chirpstack_v4", "application/#")):
        msgs = list(lorawan_messages(fleet, fmt))[:1500]
        sub = services.Subscriber(mosquitto.port, topic_filter=topic_filter)
        try:
            assert publish_messages(iter(msgs), f"mqtt://127.0.0.1:{mosquitto.port}") == len(msgs)
            got = sub.wait_for(len(msgs))
        finally:
            sub.close()
        assert sorted(got) == sorted((m.topic, m.payload) for m in msgs)


def test_simulate_water_command_with_a_lorawan_format(mosquitto, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(VIGIE_MQTT_URL=f"mqtt://127.0.0.1:{mosquitto.port}", VIGIE_DATABASE_URL=f"sqlite:///{tmp_path / 'v.db'}",
               VIGIE_DATA_DIR=str(tmp_path / "data"))
    sub = services.Subscriber(mosquitto.port, topic_filter="application/#")
    try:
        done = subprocess.run([sys.executable, "-m", "vigie.cli", "simulate", "water", "--meters", "4", "--days", "1",
                               "--start", "2026-11-03", "--format", "chirpstack_v4", "--registry",
                               str(tmp_path / "reg.yaml"), "--no-load-registry"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        got = sub.wait_for(out["published"])
    finally:
        sub.close()
    assert out["format"] == "chirpstack_v4" and len(got) == out["published"] > 4 * 24
    reg = yaml.safe_load((tmp_path / "reg.yaml").read_text(encoding="utf-8"))
    assert {t.split("/")[3] for t, _ in got} == {d["dev_eui"] for d in reg["lorawan"]["devices"]}
    bad = subprocess.run([sys.executable, "-m", "vigie.cli", "simulate", "water", "--format", "lora"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--format" in bad.stderr
