"""Simulated water meters as LoRaWAN uplinks: Axioma Qalcosonic W1 frames in The Things Stack v3 or
ChirpStack v4 MQTT envelopes (``shared/reference/payload-formats.md`` §3).

**Frame.** The W1 "enhanced 24 h" payload, fPort 100, 51 bytes, as the TTN device repository's
codec reads it (``TheThingsNetwork/lorawan-devices: vendor/axioma/qalcosonic-w1-codec.js``): byte 0
frame version 0x01; 1–4 meter time (uint32 LE, Unix s); 5 status byte; 6–9 log volume (uint32 LE,
litres); from byte 10, 23 hourly volume deltas of 14 bits each (litres, bit-packed LSB first), then
a 6-bit history multiplier (0). :func:`w1_decode` returns what that codec returns (same keys and
values), so ``decoded_payload`` / ``object`` is what a network server with the codec installed
publishes. Here the meter time is the reading's time, ``current_volume_m3`` (log volume + deltas)
the reading's index, and the deltas the index's hourly increases over the 23 hours before it
(interpolated between the meter's readings; zero before its first reading, or across a meter
replacement, a register roll-over or an hour above 16 383 L). Status bits (the codec's):
``leakage`` 0x20, ``burst`` 0xA0, ``backflow`` 0x60, ``low_battery`` 0x04.

**Envelopes.** TTS v3: topic ``v3/{application_id}@{tenant_id}/devices/{device_id}/up``, fields
``end_device_ids`` (``dev_eui``/``dev_addr`` upper-case hex), ``correlation_ids``, ``received_at``
(RFC 3339 UTC, nanoseconds), ``uplink_message`` (``f_port``, ``f_cnt``, ``frm_payload`` base64,
``decoded_payload``, ``rx_metadata[]`` per gateway, ``settings`` with ``frequency`` as a string,
``received_at``, ``consumed_airtime``, ``network_ids``); empty values omitted as TTS does.
ChirpStack v4: topic ``application/{application_id}/device/{dev_eui}/event/up``, protobuf JSON
mapping in camelCase (``deduplicationId``, ``time`` with ``+00:00`` and nanoseconds,
``deviceInfo``, ``devAddr``/``devEui``/``gatewayId`` lower-case hex, ``dr``, ``fCnt``, ``fPort``,
``data`` base64, ``object`` with every number as a float — ChirpStack passes the codec's output
through a protobuf ``Struct`` — ``rxInfo[]``, ``txInfo``, ``regionConfigId``). Device id / name
``axw1-<meter id>``; DevEUI ``70b3d5e7`` + the meter id. Everything derives from the reading and
the seed, so a duplicated reading gives byte-identical messages. Both servers publish at QoS 0;
this simulator publishes at QoS 1 like the others (a test gateway that loses nothing).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from vigie.records import MeterAlarm
from vigie.simulators.publish import WmbusMessage

FORMATS = ("wmbusmeters", "tts_v3", "chirpstack_v4")
#: The registry's name of the device type, and its mapping of the decoded payload (heating design).
DEVICE_TYPE = "axioma-w1"
DEVICE_TYPE_MAPPING = {
    "family": "water",
    "fields": {"index_m3": "current_volume_m3", "time": "timestamp_utc"},
    "alarms": {"leakage": "LEAK", "burst": "BURST", "backflow": "REVERSE_FLOW", "low_battery": "LOW_BATTERY"},
}
W1_PORT, W1_LENGTH, W1_DELTAS, W1_DELTA_MAX_L = 100, 51, 23, (1 << 14) - 1
_STATUS = {MeterAlarm.LEAK: 0x20, MeterAlarm.BURST: 0xA0, MeterAlarm.REVERSE_FLOW: 0x60,
           MeterAlarm.LOW_BATTERY: 0x04}
#: EU868's eight default uplink channels (Hz).
EU868_CHANNELS = (868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000, 867_500_000, 867_700_000,
                  867_900_000)
_NS = uuid.UUID("6f1c4a52-3b1e-4d8e-9a55-2f0c1d7e9b10")  # namespace of the simulator's uuid5 ids


@dataclass(frozen=True)
class LorawanNetwork:
    """The simulated network servers' names: TTS application and tenant ids, ChirpStack tenant
    and application names (their UUIDs derive from these), the gateways' ids (TTS) and EUIs."""

    tts_application_id: str = "eau-commune"
    tts_tenant_id: str = "ttn"
    chirpstack_tenant: str = "Commune"
    chirpstack_application: str = "Eau potable"
    device_profile: str = "Axioma Qalcosonic W1"
    gateways: tuple[tuple[str, str], ...] = (("gw-mairie-01", "b827ebfffe112233"), ("gw-eglise-02", "b827ebfffe4455aa"),
                                             ("gw-stade-03", "7076fffffe0b1c2d"))

    def uuid(self, what: str) -> str:
        return _uuid5(f"{what}:{self.chirpstack_tenant}:{self.chirpstack_application}")


@functools.lru_cache(maxsize=64)
def _uuid5(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def dev_eui_of(meter_id: str) -> str:
    """The simulated DevEUI of a meter (16 lower-case hex digits): ``70b3d5e7`` + the meter id
    (8 hex characters in the water simulator)."""
    if len(meter_id) != 8 or any(c not in "0123456789abcdef" for c in meter_id.lower()):
        raise ValueError(f"meter {meter_id!r}: expected 8 hex characters to make a DevEUI")
    return "70b3d5e7" + meter_id.lower()


def device_id_of(meter_id: str) -> str:
    return f"axw1-{meter_id.lower()}"


# --- the Axioma W1 frame ---------------------------------------------------------------------

def status_byte(alarms: tuple[str, ...] | list[str], meter_id: str = "?") -> int:
    """The W1 status byte of :class:`~vigie.records.MeterAlarm` names; ``ValueError`` for an alarm
    the W1 cannot report."""
    out = 0
    for a in alarms:
        try:
            out |= _STATUS[MeterAlarm(a)]
        except (KeyError, ValueError):
            raise ValueError(f"meter {meter_id}: an Axioma W1 cannot report alarm {a!r}") from None
    return out


def w1_frame(timestamp: int, status: int, log_volume_l: int, deltas_l: list[int] | np.ndarray) -> bytes:
    """The 51-byte W1 enhanced frame. Raises ``ValueError`` when a value does not fit its field."""
    if len(deltas_l) != W1_DELTAS:
        raise ValueError(f"W1 frame: {len(deltas_l)} deltas, expected {W1_DELTAS}")
    if not 0 <= timestamp < 2**32 or not 0 <= log_volume_l < 2**32 or not 0 <= status < 256:
        raise ValueError("W1 frame: timestamp, log volume or status out of range")
    bits = 0
    for i, d in enumerate(deltas_l):
        d = int(d)
        if not 0 <= d <= W1_DELTA_MAX_L:
            raise ValueError(f"W1 frame: delta {d} L outside 0..{W1_DELTA_MAX_L}")
        bits |= d << (14 * i)
    return (bytes([1]) + int(timestamp).to_bytes(4, "little") + bytes([status])
            + int(log_volume_l).to_bytes(4, "little") + bits.to_bytes(41, "little"))


def w1_frames(timestamp: np.ndarray, status: np.ndarray, log_volume_l: np.ndarray, deltas_l: np.ndarray) -> np.ndarray:
    """:func:`w1_frame` for many rows at once: rows × 51 uint8 (deltas rows × 23, already in range)."""
    n = len(timestamp)
    out = np.zeros((n, W1_LENGTH), dtype=np.uint8)
    out[:, 0] = 1
    out[:, 1:5] = timestamp.astype("<u4").view(np.uint8).reshape(n, 4)
    out[:, 5] = status
    out[:, 6:10] = log_volume_l.astype("<u4").view(np.uint8).reshape(n, 4)
    bits = ((deltas_l.astype(np.int64)[:, :, None] >> np.arange(14)) & 1).reshape(n, W1_DELTAS * 14)
    bits = np.concatenate([bits, np.zeros((n, 41 * 8 - W1_DELTAS * 14), dtype=np.int64)], axis=1)
    out[:, 10:] = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return out


def _iso_ms(ts: int) -> str:
    return _rfc3339_s(ts) + ".000Z"


def w1_decode(frame: bytes) -> dict:
    """What the TTN repository's W1 codec returns as ``data`` for ``frame`` (fPort 100): the same
    keys in the same order. Raises ``ValueError`` for a frame the codec refuses (length, version)."""
    if len(frame) != W1_LENGTH or frame[0] != 0x01:
        raise ValueError(f"W1 frame: {len(frame)} bytes, version {frame[:1].hex()}: expected 51 bytes, version 01")
    ts = int.from_bytes(frame[1:5], "little")
    status = frame[5]
    log_l = int.from_bytes(frame[6:10], "little")
    bits = int.from_bytes(frame[10:], "little")
    backflow = (status & 0x60) == 0x60
    burst = (status & 0xA0) == 0xA0
    data: dict = {"payload_format": "AXIOMA_W1_ENHANCED_24H", "frame_version": frame[0], "payload_bytes": len(frame),
                  "timestamp_unix": ts, "timestamp_utc": _iso_ms(ts), "status": status,
                  "low_battery": bool(status & 0x04), "permanent_error": bool(status & 0x08),
                  "temporary_error": bool(status & 0x10), "pipe_empty": status == 0x10, "backflow": backflow,
                  "burst": burst, "leakage": bool(status & 0x20) and not backflow and not burst,
                  "low_temperature": bool(status & 0x80) and not burst, "log_volume_m3": _m3(log_l)}
    deltas = [(bits >> (14 * i)) & W1_DELTA_MAX_L for i in range(W1_DELTAS)]
    data.update(zip(_DELTA_KEYS, map(_m3, deltas)))
    total = sum(deltas)
    data["history_count"] = W1_DELTAS
    data["history_total_m3"] = _m3(total)
    data["current_volume_m3"] = _m3(log_l + total)
    data["history_multiplier"] = (bits >> (14 * W1_DELTAS)) & 0x3F
    return data


_DELTA_KEYS = [f"delta_{i + 1}_m3" for i in range(W1_DELTAS)]


def _m3(litres: int) -> float | int:
    # JavaScript prints litres / 1000 without a trailing ".0" for whole numbers.
    v = litres / 1000.0
    return int(v) if v == int(v) else v


# --- from the simulated fleet --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class W1Uplink:
    """One reading as a W1 uplink: ``meter_id``, the meter's ``time`` (aware UTC, whole seconds),
    ``frame`` (51 bytes), ``f_cnt`` and the radio draw (``received_ns`` epoch ns at the application
    server, spreading factor, channel, per-gateway RSSI/SNR)."""

    meter_id: str
    time: datetime
    frame: bytes
    f_cnt: int
    received_ns: int
    spreading_factor: int
    channel: int
    gateways: tuple[int, ...]
    rssi: tuple[int, ...]
    snr: tuple[float, ...]
    dev_addr: str


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Streams 20+ of the water simulator's seed: radio per meter (20), per reading (21).
    return np.random.default_rng([seed, stream])


def w1_uplinks(result, chunk: int = 50_000) -> Iterator[W1Uplink]:
    """The uplinks of a water :class:`~vigie.simulators.water.SimResult`, in its publish order
    (duplicates repeat the same uplink). Raises ``ValueError`` for an alarm the W1 cannot report."""
    from vigie.simulators.water import REGISTER_CAPACITY_L

    r = result.readings
    n_m = len(result.meters)
    meter = r["meter_index"].to_numpy().astype(np.int64)
    secs = r["time"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    index_l = np.round(r["index_m3"].to_numpy() * 1000).astype(np.int64)
    alarms = r["alarms"].to_numpy(dtype=object)
    ids = [m.meter_id for m in result.meters]
    # Rows per meter in time order: unwrap the register's roll-over so interpolation is monotonic.
    by_meter = np.lexsort((secs, meter))
    m_s, t_s, l_s = meter[by_meter], secs[by_meter], index_l[by_meter].astype(np.float64)
    first = np.ones(len(m_s), dtype=bool)
    first[1:] = m_s[1:] != m_s[:-1]
    step = np.diff(l_s, prepend=l_s[:1])
    wraps = np.where(~first & (step < -REGISTER_CAPACITY_L / 2), REGISTER_CAPACITY_L, 0.0)
    group = np.cumsum(first) - 1
    start_of = np.flatnonzero(first)
    cum = np.cumsum(wraps)
    unwrapped = l_s + cum - cum[start_of][group]
    span = float(secs.max() - secs.min() + 3 * 86400) if len(secs) else 1.0
    t0 = float(secs.min()) if len(secs) else 0.0
    x = m_s * span + (t_s - t0 + 86400)
    first_t = np.full(n_m, np.iinfo(np.int64).max)
    np.minimum.at(first_t, m_s, t_s)
    unwrapped_of_row = np.empty(len(secs))
    unwrapped_of_row[by_meter] = unwrapped
    rank = np.empty(len(secs), dtype=np.int64)
    rank[by_meter] = np.arange(len(secs)) - start_of[group]

    radio = _rng(result.config.seed, 20)
    sf_m = radio.choice(np.arange(7, 13), size=n_m, p=[0.25, 0.2, 0.2, 0.15, 0.12, 0.08])
    rssi_m = -70 - (sf_m - 7) * 8 - radio.uniform(0, 15, n_m)
    fcnt0 = radio.integers(0, 5000, n_m)
    addr = radio.integers(0, 1 << 25, n_m)
    n_gw_m = radio.choice([1, 2, 3], size=n_m, p=[0.5, 0.35, 0.15])
    gw_first = radio.integers(0, 3, n_m)
    dev_addr = [f"{0x26000000 | int(a):08x}" for a in addr]
    per = _rng(result.config.seed, 21)
    delay_ns = per.integers(500_000_000, 20_000_000_000, len(secs))
    channel = per.integers(0, len(EU868_CHANNELS), len(secs))
    rssi_noise = per.normal(0, 3, (len(secs), 3))
    snr_noise = per.normal(0, 1.5, (len(secs), 3))

    order = result.publish_order
    for c0 in range(0, len(order), chunk):
        rows = order[c0:c0 + chunk]
        m = meter[rows]
        t = secs[rows]
        q = t[:, None] - 3600 * np.arange(W1_DELTAS, -1, -1)[None, :]        # 24 moments, oldest first
        known = q >= first_t[m][:, None]
        qx = m[:, None] * span + (np.maximum(q, first_t[m][:, None]) - t0 + 86400)
        v = np.interp(qx.ravel(), x, unwrapped).reshape(q.shape)
        v[:, -1] = unwrapped_of_row[rows]
        v = np.where(known, np.round(v), np.nan)
        deltas = np.diff(v, axis=1)
        deltas = np.where(np.isnan(deltas), 0.0, deltas)
        # A replacement (negative) or an implausible hour: no history before it.
        bad = (deltas < 0) | (deltas > W1_DELTA_MAX_L)
        last_bad = np.where(bad.any(axis=1), W1_DELTAS - 1 - np.argmax(bad[:, ::-1], axis=1), -1)
        deltas[np.arange(W1_DELTAS)[None, :] <= last_bad[:, None]] = 0.0
        deltas = deltas.astype(np.int64)
        current = index_l[rows]
        log_l = current - deltas.sum(axis=1)
        rolled = log_l < 0   # just after a roll-over: the history would need the old register
        deltas[rolled] = 0
        log_l[rolled] = current[rolled]
        status = np.array([status_byte(tuple(a.split()), ids[i]) if a else 0
                           for a, i in zip(alarms[rows].tolist(), m.tolist())], dtype=np.uint8)
        frames = w1_frames(t, status, log_l, deltas)
        sf = sf_m[m]
        n_gw = n_gw_m[m]
        g = np.arange(3)[None, :]
        rssi = np.round(rssi_m[m][:, None] - 6 * g + rssi_noise[rows]).astype(np.int64)
        snr = np.round(np.clip(10 - (sf[:, None] - 7) * 3.5 - 2 * g + snr_noise[rows], -20, 12), 1)
        gw = (gw_first[m][:, None] + g) % 3
        fcnt = fcnt0[m] + rank[rows]
        rec_ns = t * 1_000_000_000 + delay_ns[rows]
        cols = zip(m.tolist(), t.tolist(), fcnt.tolist(), rec_ns.tolist(), sf.tolist(), channel[rows].tolist(),
                   n_gw.tolist(), gw.tolist(), rssi.tolist(), snr.tolist())
        for j, (i, tj, fc, rns, sfj, ch, k, gwj, rs, sn) in enumerate(cols):
            yield W1Uplink(meter_id=ids[i], time=datetime.fromtimestamp(tj, timezone.utc), frame=frames[j].tobytes(),
                           f_cnt=fc, received_ns=rns, spreading_factor=sfj, channel=ch, gateways=tuple(gwj[:k]),
                           rssi=tuple(rs[:k]), snr=tuple(sn[:k]), dev_addr=dev_addr[i])


# --- envelopes -----------------------------------------------------------------------------------

_SECONDS: dict[int, str] = {}


def _rfc3339_s(epoch_s: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) of whole epoch seconds, cached: uplinks repeat nearby seconds."""
    text = _SECONDS.get(epoch_s)
    if text is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        text = _SECONDS[epoch_s] = datetime.fromtimestamp(epoch_s, timezone.utc).isoformat()[:19]
    return text


def _rfc3339_ns(epoch_ns: int, suffix: str = "Z") -> str:
    s, ns = divmod(epoch_ns, 1_000_000_000)
    return f"{_rfc3339_s(s)}.{ns:09d}{suffix}"


def airtime_s(payload_bytes: int, sf: int, bandwidth_hz: int = 125_000) -> float:
    """LoRa time on air (s) of a PHY payload (Semtech AN1200.13: 8-symbol preamble, explicit
    header, CRC, coding rate 4/5, low-data-rate optimisation at SF11/12 on 125 kHz)."""
    t_sym = (2 ** sf) / bandwidth_hz
    de = 1 if sf >= 11 and bandwidth_hz == 125_000 else 0
    n = 8 + max(math.ceil((8 * payload_bytes - 4 * sf + 28 + 16) / (4 * (sf - 2 * de))) * 5, 0)
    return (8 + 4.25 + n) * t_sym


def _digest(*parts) -> bytes:
    """64 bytes derived from ``parts``: the per-message draws of identifiers and tokens."""
    return hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=64).digest()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]   # 10 bits → two characters


def _ulid(seed: bytes) -> str:
    """A ULID-shaped id (26 Crockford base-32 characters, 128 bits) from 16 bytes."""
    n = int.from_bytes(seed[:16], "big")
    return "".join([_PAIRS[(n >> (10 * i)) & 1023] for i in range(12, -1, -1)])


def tts_v3_envelope(u: W1Uplink, net: LorawanNetwork) -> tuple[str, dict]:
    """(topic, JSON object) of a The Things Stack v3 uplink message."""
    dev_eui = dev_eui_of(u.meter_id).upper()
    device_id = device_id_of(u.meter_id)
    h = _digest("tts", u.meter_id, u.f_cnt, u.received_ns)
    ns_ns = u.received_ns - 180_000_000 - h[0] * 100_000        # the network server got it earlier
    gw_ns = ns_ns - 250_000_000 - h[1] * 100_000
    tmst = (gw_ns // 1000 + h[2] * 1_000_003) % 2**32
    rx = []
    for p, (g, rssi, snr) in enumerate(zip(u.gateways, u.rssi, u.snr)):
        gw_id, gw_eui = net.gateways[g % len(net.gateways)]
        rx.append({"gateway_ids": {"gateway_id": gw_id, "eui": gw_eui.upper()},
                   "time": _rfc3339_ns(gw_ns + p * 1000), "timestamp": int(tmst + p), "rssi": rssi,
                   "channel_rssi": rssi, "snr": snr,
                   "uplink_token": base64.b64encode(h[4 + 10 * p:32 + 10 * p]).decode(),
                   **({"channel_index": u.channel} if u.channel else {}),
                   "received_at": _rfc3339_ns(gw_ns + 40_000_000 + p * 1000)})
    uplink: dict = {
        "session_key_id": base64.b64encode(hashlib.blake2b(u.dev_addr.encode(), digest_size=16).digest()).decode(),
        "f_port": W1_PORT,
        **({"f_cnt": u.f_cnt} if u.f_cnt else {}),
        "frm_payload": base64.b64encode(u.frame).decode(),
        "decoded_payload": w1_decode(u.frame),
        "rx_metadata": rx,
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": u.spreading_factor,
                                            "coding_rate": "4/5"}},
                     "frequency": str(EU868_CHANNELS[u.channel]), "timestamp": int(tmst),
                     "time": _rfc3339_ns(gw_ns)},
        "received_at": _rfc3339_ns(ns_ns),
        "consumed_airtime": f"{airtime_s(13 + W1_LENGTH, u.spreading_factor):.6f}s",
        "network_ids": {"net_id": "000013", "tenant_id": net.tts_tenant_id, "cluster_id": "eu1",
                        "cluster_address": "eu1.cloud.thethings.network"},
    }
    body = {
        "end_device_ids": {"device_id": device_id, "application_ids": {"application_id": net.tts_application_id},
                           "dev_eui": dev_eui, "join_eui": "70B3D57ED0000000", "dev_addr": u.dev_addr.upper()},
        "correlation_ids": [f"as:up:{_ulid(h[0:16])}", f"gs:uplink:{_ulid(h[16:32])}", f"ns:uplink:{_ulid(h[32:48])}"],
        "received_at": _rfc3339_ns(u.received_ns),
        "uplink_message": uplink,
    }
    topic = f"v3/{net.tts_application_id}@{net.tts_tenant_id}/devices/{device_id}/up"
    return topic, body


def _floats(obj: dict) -> dict:
    """A flat decoded payload with its numbers as floats, as a protobuf ``Struct`` carries them
    (booleans and strings unchanged)."""
    return {k: float(v) if type(v) is int or type(v) is float else v for k, v in obj.items()}


def chirpstack_v4_envelope(u: W1Uplink, net: LorawanNetwork) -> tuple[str, dict]:
    """(topic, JSON object) of a ChirpStack v4 ``up`` event."""
    dev_eui = dev_eui_of(u.meter_id)
    h = _digest("cs", u.meter_id, u.f_cnt, u.received_ns)
    app_id = net.uuid("application")
    gw_ns = u.received_ns - 200_000_000 - h[0] * 100_000
    rx = []
    for p, (g, rssi, snr) in enumerate(zip(u.gateways, u.rssi, u.snr)):
        _, gw_eui = net.gateways[g % len(net.gateways)]
        rx.append({"gatewayId": gw_eui.lower(), "uplinkId": int.from_bytes(h[16 + 4 * p:20 + 4 * p], "big"),
                   "gwTime": _rfc3339_ns(gw_ns + p * 1000, "+00:00"),
                   "nsTime": _rfc3339_ns(gw_ns + 15_000_000 + p * 1000, "+00:00"),
                   "rssi": rssi, "snr": snr, "channel": u.channel, "location": {},
                   "context": base64.b64encode(h[32 + 4 * p:36 + 4 * p]).decode(),
                   "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"}, "crcStatus": "CRC_OK"})
    body = {
        "deduplicationId": str(uuid.UUID(bytes=h[:16], version=4)),
        "time": _rfc3339_ns(u.received_ns, "+00:00"),
        "deviceInfo": {"tenantId": net.uuid("tenant"), "tenantName": net.chirpstack_tenant, "applicationId": app_id,
                       "applicationName": net.chirpstack_application, "deviceProfileId": net.uuid("profile"),
                       "deviceProfileName": net.device_profile, "deviceName": device_id_of(u.meter_id),
                       "devEui": dev_eui, "deviceClassEnabled": "CLASS_A", "tags": {}},
        "devAddr": u.dev_addr.lower(),
        "adr": True,
        "dr": 12 - u.spreading_factor,
        "fCnt": u.f_cnt,
        "fPort": W1_PORT,
        "confirmed": False,
        "data": base64.b64encode(u.frame).decode(),
        "object": _floats(w1_decode(u.frame)),
        "rxInfo": rx,
        "txInfo": {"frequency": EU868_CHANNELS[u.channel],
                   "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": u.spreading_factor,
                                           "codeRate": "CR_4_5"}}},
        "regionConfigId": "eu868",
    }
    return f"application/{app_id}/device/{dev_eui}/event/up", body


def lorawan_messages(result, fmt: str, net: LorawanNetwork = LorawanNetwork()) -> Iterator[WmbusMessage]:
    """The messages of a water :class:`~vigie.simulators.water.SimResult` in publish order, as
    ``fmt`` (``tts_v3`` or ``chirpstack_v4``) uplinks; each message's ``time`` is the reading's
    (for pacing)."""
    if fmt not in ("tts_v3", "chirpstack_v4"):
        raise ValueError(f"LoRaWAN format {fmt!r}: expected tts_v3 or chirpstack_v4")
    envelope = tts_v3_envelope if fmt == "tts_v3" else chirpstack_v4_envelope
    for u in w1_uplinks(result):
        topic, body = envelope(u, net)
        yield WmbusMessage(topic, json.dumps(body, separators=(",", ":")).encode(), u.time)


def lorawan_registry_section(result) -> dict:
    """The registry's ``lorawan:`` section for a water fleet sent as W1 uplinks: the ``axioma-w1``
    device type (:data:`DEVICE_TYPE_MAPPING`) and one device per meter (``dev_eui`` lower-case,
    ``type``, ``meter``)."""
    return {"device_types": {DEVICE_TYPE: DEVICE_TYPE_MAPPING},
            "devices": [{"dev_eui": dev_eui_of(m.meter_id), "type": DEVICE_TYPE, "meter": m.meter_id}
                        for m in result.meters]}
