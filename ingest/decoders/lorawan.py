"""What the LoRaWAN network-server decoders (:mod:`~vigie.ingest.decoders.tts_v3`,
:mod:`~vigie.ingest.decoders.chirpstack_v4`) share: the DevEUI, the registry lookup, and the
mapping of a device's decoded payload to a :class:`~vigie.records.MeterReading` or
:class:`~vigie.records.HeatingReading`.

A network server forwards what the device's payload formatter (TTS) or codec (ChirpStack) made of
the frame, with field names chosen by that decoder (``shared/reference/payload-formats.md`` §3):
the registry's device type says which path holds which canonical field
(``vigie.heating_registry.FieldMapping``: ``fields`` canonical → (dotted path, scale), ``alarms``
path → ``MeterAlarm``) and the type's ``family`` which record it is: ``water`` → ``MeterReading``
of the registered meter, ``heating`` → ``HeatingReading`` of the registered heating device.

Time: the mapped ``time`` (ISO 8601 text with an offset, or epoch seconds × the mapping's scale),
else the network server's reception time of the uplink. A device time is refused like any other
(``bad_time``: no offset, before 2000; ``future_time``: more than ``max_future_s`` after reception).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

from vigie.ingest.decoders import DecodeError, fields
from vigie.records import HeatingReading, MeterReading

if TYPE_CHECKING:  # the registry imports the decoders package: annotations only
    from vigie.heating_registry import LorawanDeviceInfo

_DEV_EUI = re.compile(r"[0-9A-Fa-f]{16}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: HeatingReading fields a mapping may fill (every optional one: the registry checks the names).
HEATING_FIELDS = ("temperature_c", "setpoint_c", "valve_pct", "heating", "window_open", "occupied", "power_w",
                  "energy_kwh", "battery_pct", "battery_low")


class LorawanDeviceLookup(Protocol):
    """``device_for(dev_eui)``: the registered LoRaWAN device (``dev_eui`` lower-case hex), or None
    (``vigie.heating_registry.HeatingDirectory.by_dev_eui``; may raise ``RegistryUnavailable``)."""

    def __call__(self, dev_eui: str) -> "LorawanDeviceInfo | None": ...


def dev_eui(value, field: str) -> str:
    """``value`` as a DevEUI: 16 hex digits, returned lower-case (TTS sends upper-case, ChirpStack
    lower-case). Error kind ``bad_id`` naming ``field``."""
    if value is None:
        raise DecodeError(f"{field} is missing (a device without a DevEUI cannot be mapped)", "bad_id")
    if not isinstance(value, str) or not _DEV_EUI.fullmatch(value):
        raise DecodeError(f"{field} must be 16 hex digits, got {fields._short(value)}", "bad_id")
    return value.lower()


def sub_object(obj: dict, name: str, where: str = "") -> dict:
    """``obj[name]`` when it is a JSON object; ``not_object`` naming ``where + name`` otherwise."""
    value = obj.get(name)
    if not isinstance(value, dict):
        what = "missing" if value is None else f"a {type(value).__name__}, not an object"
        raise DecodeError(f"{where}{name} is {what}", "not_object")
    return value


def device(device_for: LorawanDeviceLookup, eui: str) -> "LorawanDeviceInfo":
    """The registered device ``eui``; ``unknown_device`` when the registry has none."""
    info = device_for(eui)
    if info is None:
        raise DecodeError(f"DevEUI {eui} is not a registered LoRaWAN device", "unknown_device")
    return info


def readings(info: "LorawanDeviceInfo", decoded, server_time: datetime, received_at: datetime,
             max_future_s: float, source: str) -> list[MeterReading | HeatingReading]:
    """The record ``decoded`` (the network server's decoded payload) gives for device ``info``:
    one ``MeterReading`` (family water: ``index_m3`` required, ``flow_l_per_h``, ``battery_pct``,
    alarms) or one ``HeatingReading`` (family heating; ``[]`` when the payload holds none of the
    mapped fields, e.g. a device's configuration frame). Errors: ``no_decoded_payload`` (not a JSON
    object), ``mapping_error`` (a mapped path missing or of the wrong type), ``bad_index``,
    ``bad_field`` (a value out of range), ``bad_time``, ``future_time``."""
    if not isinstance(decoded, dict):
        raise DecodeError(f"the decoded payload is a {type(decoded).__name__}, not an object", "no_decoded_payload")
    mapping = info.mapping
    try:
        values = mapping.extract(decoded)
        alarms = mapping.alarms_of(decoded) if mapping.family == "water" else ()
    except ValueError as exc:  # vigie.heating_registry.MappingError, with its dead-letter kind
        kind = getattr(exc, "kind", None)
        if kind is None:
            raise
        raise DecodeError(f"device type {info.type}: {exc}", kind) from None
    time = _time(values.pop("time", None), server_time, received_at, max_future_s)
    if mapping.family == "water":
        if info.meter_id is None:
            raise DecodeError(f"DevEUI {info.dev_eui} has a water device type but no meter", "unknown_device")
        index = fields.number(values, "index_m3", "bad_index", required=True, minimum=0.0,
                              maximum=fields.MAX_INDEX_M3)
        return [MeterReading(meter_id=info.meter_id, time=time, index_m3=index,
                             flow_l_per_h=fields.number(values, "flow_l_per_h", "bad_field"),
                             battery_pct=fields.number(values, "battery_pct", "bad_field", minimum=0.0, maximum=100.0),
                             alarms=alarms, source=source)]
    if info.device is None:
        raise DecodeError(f"DevEUI {info.dev_eui} has a heating device type but no heating device", "unknown_device")
    for name, (lo, hi) in _RANGES.items():
        fields.number(values, name, "bad_field", minimum=lo, maximum=hi)
    reading = {name: values[name] for name in HEATING_FIELDS if values.get(name) is not None}
    if not reading:
        return []
    return [HeatingReading(device_id=info.device.device_id, time=time, source=source, **reading)]


#: Ranges of the heating numbers (as the zigbee2mqtt heating decoder checks them).
_RANGES = {"temperature_c": (-60.0, 100.0), "setpoint_c": (0.0, 50.0), "valve_pct": (0.0, 100.0),
           "power_w": (0.0, None), "energy_kwh": (0.0, None), "battery_pct": (0.0, 100.0)}


def _time(value, server_time: datetime, received_at: datetime, max_future_s: float) -> datetime:
    if value is None:
        return server_time
    if isinstance(value, float):  # epoch seconds (the mapping's scale already applied)
        try:
            value = (_EPOCH + timedelta(seconds=value)).isoformat()
        except (OverflowError, ValueError):
            raise DecodeError(f"time {value!r} is not epoch seconds", "bad_time") from None
    return fields.timestamp({"time": value}, "time", received_at, max_future_s, naive_is_utc=False)
