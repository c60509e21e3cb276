"""wmbusmeters JSON, as its ``shell=``/MQTT setup publishes it (one telegram per message).

Source: wmbusmeters 3.0.x (``src/meters.cc`` JSON builder, ``drivers/src/*.xmq``, ``src/driver_izar.cc``),
summarised in ``shared/reference/payload-formats.md`` §1. Water drivers covered: ``kamwater``
(and its pre-3.0 names ``multical21``, ``flowiq2200``), ``izar``, ``izarv2``, ``iperl``,
``apator162``, ``itron``, ``hydrus``; any other driver that reports ``total_m3`` is read the same way.

Mapping (see ``ingest/decoders/README.md``): ``id`` → meter_id (string, never an int: ids hold hex
letters and leading zeros); ``total_m3`` → index_m3; ``timestamp`` (UTC, ``%FT%TZ``) → time;
``flow_m3h``/``volume_flow_m3h`` × 1000 → flow_l_per_h; ``remaining_battery_life_y``/``battery_y`` →
battery_life_y; ``status``/``current_status``/``current_alarms`` → status_raw and the normalised
:class:`~vigie.records.MeterAlarm` flags. Null fields (wmbusmeters ≥ 1.8.0) mean "no data".

The bridge's availability messages (``<prefix>/bridge/state`` and plain ``online``/``offline``
bodies, Home Assistant add-on) are not readings: :meth:`decode` returns ``[]`` for them.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime

from vigie.ingest.decoders import DecodeError, fields, register
from vigie.records import MeterAlarm, MeterReading

# Status tokens of the drivers above, upper-cased, → normalised flag. Tokens not listed (OK,
# NO_ALARM, BUSY, UNDERFLOW, SUBMARINE, NO_CONSUMPTION, LOW_ABIENT_TEMPERATURE, PREV_* — past
# alarms, not current ones) add no flag but stay in status_raw.
ALARM_TOKENS: dict[str, MeterAlarm] = {
    "LEAK": MeterAlarm.LEAK,                      # kamwater
    "LEAKAGE": MeterAlarm.LEAK,                   # izar (leakage), izarv2
    "BURST": MeterAlarm.BURST,                    # kamwater
    "REVERSE": MeterAlarm.REVERSE_FLOW,           # kamwater
    "BACK_FLOW": MeterAlarm.REVERSE_FLOW,         # izar (back_flow), izarv2
    "DRY": MeterAlarm.DRY,                        # kamwater
    "TAMPER": MeterAlarm.TAMPER,                  # kamwater
    "SENSOR_FRAUD": MeterAlarm.TAMPER,            # izar, izarv2
    "MECHANICAL_FRAUD": MeterAlarm.TAMPER,        # izar, izarv2
    "LOW_BATTERY": MeterAlarm.LOW_BATTERY,        # kamwater
    "POWER_LOW": MeterAlarm.LOW_BATTERY,          # TPL status byte
    "METER_BLOCKED": MeterAlarm.BLOCKED,          # izar, izarv2
    "BLOCKED": MeterAlarm.BLOCKED,
    "OVERFLOW": MeterAlarm.OVERFLOW,              # izar, izarv2
    "FLOW_ABOVE_Q4": MeterAlarm.OVERFLOW,         # kamwater: flow above the meter's overload flow
    "GENERAL_ALARM": MeterAlarm.ERROR,            # izar: an alarm the telegram does not name
    "ALARM": MeterAlarm.ERROR,                    # TPL status byte
    "ERROR": MeterAlarm.ERROR,                    # TPL status byte
    "PERMANENT_ERROR": MeterAlarm.ERROR,          # TPL status byte
    "TEMPORARY_ERROR": MeterAlarm.ERROR,          # TPL status byte
}
_UNKNOWN_ERROR_FLAGS = "ERROR_FLAGS_"             # kamwater: bits the driver cannot name

# Fields whose text is the meter's current status, in the order they are combined into status_raw.
STATUS_FIELDS = ("status", "current_status", "current_alarms")
FLOW_FIELDS = ("flow_m3h", "volume_flow_m3h")
BATTERY_FIELDS = ("remaining_battery_life_y", "battery_y")
BRIDGE_BODIES = {b"online", b"offline"}

_TOKEN_SPLIT = re.compile(r"[\s,]+")


@functools.lru_cache(maxsize=4096)
def alarms_of(status_texts: tuple[str, ...]) -> tuple[str, ...]:
    """Normalised flags (sorted, unique) for status texts such as ``"LEAK BURST"`` or
    ``"leakage,back_flow"``. Cached: a fleet reports a handful of distinct statuses."""
    flags: set[str] = set()
    for text in status_texts:
        for token in _TOKEN_SPLIT.split(text.upper()):
            if token in ALARM_TOKENS:
                flags.add(str(ALARM_TOKENS[token]))
            elif token.startswith(_UNKNOWN_ERROR_FLAGS):
                flags.add(str(MeterAlarm.ERROR))
    return tuple(sorted(flags))


class WmbusmetersDecoder:
    """Decoder ``wmbusmeters``: one JSON object per message → one reading.

    ``max_future_s``: a ``timestamp`` later than reception by more than this is refused.
    Errors (:class:`DecodeError` kinds): ``not_utf8``, ``not_json``, ``not_object``, ``bad_id``,
    ``bad_index`` (missing, null, non-numeric, negative, NaN/inf ``total_m3``), ``bad_time``,
    ``future_time``, ``bad_field`` (a flow or battery field that is not a number, a status that is
    not text).
    """

    name = "wmbusmeters"
    yields = MeterReading

    def __init__(self, max_future_s: float = 300.0) -> None:
        self.max_future_s = max_future_s

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterReading]:
        if topic.endswith("/bridge/state") or payload.strip() in BRIDGE_BODIES:
            return []
        obj = fields.load_json(payload)
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object, got {type(obj).__name__}", "not_object")
        meter_id = fields.meter_id(obj, "id")
        index = fields.number(obj, "total_m3", "bad_index", required=True, minimum=0.0,
                              maximum=fields.MAX_INDEX_M3)
        time = fields.timestamp(obj, "timestamp", received_at, self.max_future_s, naive_is_utc=True)
        flow_m3h = _first_number(obj, FLOW_FIELDS)
        battery_y = _first_number(obj, BATTERY_FIELDS, minimum=0.0)
        texts = _status_texts(obj)
        return [MeterReading(
            meter_id=meter_id,
            time=time,
            index_m3=index,
            flow_l_per_h=None if flow_m3h is None else flow_m3h * 1000.0,
            battery_life_y=battery_y,
            alarms=alarms_of(texts),
            status_raw=" ".join(texts) if texts else None,
            source=self.name,
        )]


def _first_number(obj: dict, names: tuple[str, ...], minimum: float | None = None) -> float | None:
    for name in names:
        value = fields.number(obj, name, "bad_field", minimum=minimum)
        if value is not None:
            return value
    return None


def _status_texts(obj: dict) -> tuple[str, ...]:
    """The distinct non-empty status texts (``current_status`` is ``""`` when OK and usually
    repeats ``status``)."""
    texts: list[str] = []
    for name in STATUS_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DecodeError(f"{name} must be text, got {type(value).__name__}", "bad_field")
        value = value.strip()
        if value and value not in texts:
            texts.append(value)
    return tuple(texts)


register(WmbusmetersDecoder())
