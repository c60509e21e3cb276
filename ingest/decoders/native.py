"""Vigie's native JSON, for devices and gateways we program ourselves.

One reading is a JSON object (RFC 8259)::

    {"meter_id": "vg-000123", "time": "2026-03-14T07:42:10Z", "index_m3": 152.417,
     "flow_l_per_h": 12.0, "battery_pct": 87, "alarms": ["LEAK"], "status": "leak 1-8 h"}

- ``meter_id`` (string, required): the meter's id, exactly as registered.
- ``index_m3`` (number, 0 ≤ index ≤ 1e9, required): cumulative index, m³.
- ``time`` (RFC 3339 string with ``Z`` or an offset, optional): when the index was read;
  the time of reception when absent.
- ``flow_l_per_h`` (number, optional; negative = reverse flow), ``battery_pct`` (0–100,
  optional), ``battery_life_y`` (≥ 0, optional).
- ``alarms`` (array of :class:`~vigie.records.MeterAlarm` names, optional), ``status`` (string,
  optional: the device's own status text).

Other keys are ignored (room for later fields). A message may also be a JSON array of such
objects (a batch); one bad element refuses the whole message, so it is dead-lettered intact.
"""

from __future__ import annotations

from datetime import datetime

from vigie.ingest.decoders import DecodeError, fields, register
from vigie.records import MeterAlarm, MeterReading

_ALARM_NAMES = {a.value for a in MeterAlarm}


class NativeDecoder:
    """Decoder ``native``. Errors (:class:`DecodeError` kinds): ``not_utf8``, ``not_json``,
    ``not_object`` (neither an object nor a non-empty array of objects), ``bad_id``, ``bad_index``,
    ``bad_time`` (unreadable, or without offset), ``future_time`` (more than ``max_future_s``
    after reception), ``bad_field`` (flow, battery, alarms or status of the wrong type, an unknown
    alarm name). In a batch the reason starts with the element's position, e.g. ``[2] …``."""

    name = "native"
    yields = MeterReading

    def __init__(self, max_future_s: float = 300.0) -> None:
        self.max_future_s = max_future_s

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterReading]:
        doc = fields.load_json(payload)
        if isinstance(doc, dict):
            return [self._reading(doc, received_at)]
        if not isinstance(doc, list):
            raise DecodeError(f"expected a JSON object or array, got {type(doc).__name__}", "not_object")
        if not doc:
            raise DecodeError("empty batch", "not_object")
        out = []
        for i, item in enumerate(doc):
            try:
                if not isinstance(item, dict):
                    raise DecodeError(f"expected a JSON object, got {type(item).__name__}", "not_object")
                out.append(self._reading(item, received_at))
            except DecodeError as exc:
                raise DecodeError(f"[{i}] {exc}", exc.kind) from None
        return out

    def _reading(self, obj: dict, received_at: datetime) -> MeterReading:
        meter_id = fields.meter_id(obj, "meter_id")
        index = fields.number(obj, "index_m3", "bad_index", required=True, minimum=0.0,
                              maximum=fields.MAX_INDEX_M3)
        time = fields.timestamp(obj, "time", received_at, self.max_future_s, naive_is_utc=False)
        status = obj.get("status")
        if status is not None and not isinstance(status, str):
            raise DecodeError(f"status must be text, got {type(status).__name__}", "bad_field")
        return MeterReading(
            meter_id=meter_id,
            time=time,
            index_m3=index,
            flow_l_per_h=fields.number(obj, "flow_l_per_h", "bad_field"),
            battery_pct=fields.number(obj, "battery_pct", "bad_field", minimum=0.0, maximum=100.0),
            battery_life_y=fields.number(obj, "battery_life_y", "bad_field", minimum=0.0),
            alarms=_alarms(obj.get("alarms")),
            status_raw=status,
            source=self.name,
        )


def _alarms(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise DecodeError("alarms must be an array of strings", "bad_field")
    unknown = sorted(set(value) - _ALARM_NAMES)
    if unknown:
        raise DecodeError(f"unknown alarm name(s) {', '.join(unknown)}; known: {', '.join(sorted(_ALARM_NAMES))}",
                          "bad_field")
    return tuple(sorted(set(value)))


register(NativeDecoder())
