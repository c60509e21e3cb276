"""zigbee2mqtt device messages (assisted-living home sensors) → :class:`~vigie.records.SensorEvent`.

Source: zigbee2mqtt 2.x (``lib/extension/availability.ts``, ``lib/mqtt.ts``, ``lib/util/utils.ts``
``formatDate``) and zigbee-herdsman-converters (``src/lib/exposes.ts``, ``src/devices/lumi.ts``
RTCGQ11LM / MCCGQ11LM / SJCGQ11LM, ``ikea.ts`` E1525, ``tuya.ts`` TS011F / TS0601_bed_presence_sensor /
ZG-210Z), summarised in ``shared/reference/payload-formats.md`` §2. Setup and device list:
``docs/homes.md``.

Topics, under the configured base topic (``zigbee2mqtt``):

- ``<base>/<friendly_name>`` — a device's state, one JSON object; the friendly name may contain
  ``/`` (``home-0001/bathroom/door``). With ``cache_state`` (default on) every message repeats all
  cached attributes, not only the one that changed.
- ``<base>/<friendly_name>/availability`` — ``{"state":"online"|"offline"}`` (zigbee2mqtt ≥ 2.0),
  or the plain body ``online``/``offline`` (1.x default, ``legacy_availability_payload``).
- ``<base>/[<prefix>/]bridge/state`` — the bridge's own availability, same bodies; a home's bridge
  runs with base topic ``<base>/<prefix>`` so that several bridges share one broker. Other
  ``bridge/…`` topics (info, devices, logging, event, response…) and ``…/set``, ``…/get`` commands
  are not reports: :meth:`Zigbee2MqttDecoder.decode` returns ``[]`` for them.

The friendly name is mapped to the sensor's opaque id, kind and room by a :class:`SensorLookup`
(``vigie.sensors.SensorDirectory`` over the registry); the registered kind decides which field is
the state. Mapping of a state message (at most one event: one sensor, one kind):

============== ======================================================== ===========================
kind            zigbee2mqtt field                                        SensorEvent.value
============== ======================================================== ===========================
``motion``      ``occupancy`` (else ``presence``)                        1 motion, 0 clear
``presence``    ``occupancy``, else ``presence``, else ``pressure_state`` 1 occupied, 0 free
                (ZG-210Z ``none`` → 0, ``sit``/``sedentary`` → 1)
``contact``     ``contact`` — **true = closed**                          1 **open**, 0 closed
``water_leak``  ``water_leak``                                           1 wet, 0 dry
``power``       ``power`` W; ``state`` ``OFF`` forces 0 W (with          W ≥ 0
                ``cache_state`` the last power stays cached after the
                relay opens); ``state`` ``OFF`` alone → 0 W
``use``         ``state`` (``ON``/``OFF``)                               1 on, 0 off
============== ======================================================== ===========================

``battery`` (%, 0–100) → ``battery_pct``; ``linkquality`` (0–255) → ``link_quality``; time from
``last_seen`` in any of its three formats (``ISO_8601`` ``2026-03-14T07:45:02.113Z``,
``ISO_8601_local`` with an offset, ``epoch`` milliseconds), else the reception time. Booleans may
come as JSON booleans or the texts ``true``/``false``/``ON``/``OFF`` (any case), numbers as JSON
numbers or decimal text. A message with none of the kind's fields and none of another kind's
(battery report of a device run without ``cache_state``) gives ``[]``. Everything else
(``voltage``, ``illuminance``, ``device``, ``update``…) is ignored.

Availability gives a :class:`DeviceAvailability` instead of events.

Refusals (:class:`~vigie.ingest.decoders.DecodeError` kinds): ``not_utf8``, ``not_json``,
``not_object``, ``bad_topic`` (not under the base topic, or an empty friendly name),
``unknown_device`` (friendly name not registered), ``kind_mismatch`` (the message reports another
kind's state: the registry entry is wrong), ``bad_state`` (a state field of the wrong type or
value), ``bad_field`` (battery, linkquality or power of the wrong type or range), ``bad_time``,
``future_time`` (``last_seen`` more than ``max_future_s`` after reception).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal, Protocol

from vigie.ingest.decoders import DecodeError, fields, register
from vigie.records import Room, SensorEvent, SensorKind

#: Levels under ``bridge`` that zigbee2mqtt publishes itself (2.x): not device reports.
BRIDGE_TOPICS = frozenset({"state", "info", "devices", "groups", "definitions", "extensions", "logging",
                           "event", "config", "health", "converters", "response", "request", "options"})
#: Command topics a controller publishes *to* a device (``<name>/set``, ``<name>/set/<attribute>``).
COMMAND_LEVELS = frozenset({"set", "get"})
#: Z2M's ``ZG-210Z`` pressure mat reports an enum, not a boolean.
PRESSURE_STATES = {"none": 0.0, "sit": 1.0, "sedentary": 1.0}
#: State fields per kind, in the order they are read; the first present one gives the value.
KIND_FIELDS: dict[SensorKind, tuple[str, ...]] = {
    SensorKind.MOTION: ("occupancy", "presence"),
    SensorKind.PRESENCE: ("occupancy", "presence", "pressure_state"),
    SensorKind.CONTACT: ("contact",),
    SensorKind.WATER_LEAK: ("water_leak",),
    SensorKind.POWER: ("power", "state"),
    SensorKind.USE: ("state",),
}
_STATE_FIELDS = frozenset(f for names in KIND_FIELDS.values() for f in names)
_TRUE = frozenset({"true", "on"})
_FALSE = frozenset({"false", "off"})
_DIGITS = re.compile(r"\d+")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_AVAILABILITY_BODIES = {b"online": True, b"offline": False}


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the registry says about one friendly name: the sensor's opaque id, its kind and room,
    and the home (registry household id) it belongs to."""

    sensor_id: str
    kind: SensorKind
    room: Room
    home_id: str


class SensorLookup(Protocol):
    """``sensor_for(friendly_name)``: the registered sensor, or None when the name is unknown."""

    def __call__(self, friendly_name: str) -> SensorInfo | None: ...


@dataclass(frozen=True, slots=True)
class DeviceAvailability:
    """A zigbee2mqtt availability message: a device (``device_kind="sensor"``, ``device_id`` the
    sensor's opaque id, ``home_id`` its home) or a bridge (``device_kind="bridge"``, ``device_id``
    the bridge's base topic, e.g. ``zigbee2mqtt/home-0001``; ``home_id`` None: the registry does not
    map bridges) going ``online`` or offline, at ``time`` (the reception time, UTC: the message
    carries none).

    Store it as a state change (measurement ``sensor_availability``, tags ``device_kind``,
    ``device_id``, field ``online`` 1/0), written only when it differs from the device's last
    stored value: the message is retained, so every reconnect of the ingestor receives it again.
    zigbee2mqtt sends ``offline`` for a battery device only after its passive timeout (25 h by
    default), so the silent-device check relies on the last event time first.
    """

    device_kind: Literal["sensor", "bridge"]
    device_id: str
    online: bool
    time: datetime
    home_id: str | None = None
    source: str = "zigbee2mqtt"


class Zigbee2MqttDecoder:
    """Decoder ``zigbee2mqtt``: one message → ``list[SensorEvent]`` (at most one event) or a
    :class:`DeviceAvailability`.

    ``sensor_for``: friendly name → :class:`SensorInfo` (None: unknown); None makes an unbound
    decoder (the registered one), whose :meth:`decode` raises ``RuntimeError`` until
    :meth:`bind` gives it a lookup. ``base_topic``: the prefix the ingestor subscribes under
    (``zigbee2mqtt``). ``max_future_s``: a ``last_seen`` later than reception by more than this
    is refused. Errors: see the module docstring.
    """

    name = "zigbee2mqtt"
    yields = SensorEvent
    lookup = "home_sensor"

    def __init__(self, sensor_for: SensorLookup | None = None, base_topic: str = "zigbee2mqtt",
                 max_future_s: float = 300.0) -> None:
        if not base_topic or base_topic.endswith("/") or any(c in base_topic for c in "+#"):
            raise ValueError(f"base_topic {base_topic!r}: expected a topic without wildcards or trailing '/'")
        self.sensor_for = sensor_for
        self.base_topic = base_topic
        self.max_future_s = max_future_s

    def bind(self, sensor_for: SensorLookup, base_topic: str) -> "Zigbee2MqttDecoder":
        """This decoder for the registry's sensors under ``base_topic`` (ValueError as the constructor)."""
        return Zigbee2MqttDecoder(sensor_for, base_topic, self.max_future_s)

    def decode(self, topic: str, payload: bytes,
               received_at: datetime) -> list[SensorEvent] | DeviceAvailability:
        if self.sensor_for is None:
            raise RuntimeError("the zigbee2mqtt decoder needs a sensor lookup: use bind(sensor_for, base_topic)")
        where = classify_topic(topic, self.base_topic)
        if where.kind == "bridge_state":
            return DeviceAvailability("bridge", where.name, availability_state(payload), received_at,
                                      source=self.name)
        if where.kind == "other":
            return []
        info = self._sensor(where.name)
        if where.kind == "availability":
            return DeviceAvailability("sensor", info.sensor_id, availability_state(payload), received_at,
                                      home_id=info.home_id, source=self.name)
        obj = fields.load_json(payload)
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object, got {type(obj).__name__}", "not_object")
        value = _value(obj, info)
        battery = fields.number(obj, "battery", "bad_field", minimum=0.0, maximum=100.0)
        link_quality = fields.number(obj, "linkquality", "bad_field", minimum=0.0, maximum=255.0)
        time = last_seen(obj, received_at, self.max_future_s)
        if value is None:
            return []
        return [SensorEvent(sensor_id=info.sensor_id, time=time, kind=info.kind, value=value,
                            battery_pct=battery, link_quality=link_quality, source=self.name)]

    def _sensor(self, friendly_name: str) -> SensorInfo:
        info = self.sensor_for(friendly_name)
        if info is None:
            raise DecodeError(f"friendly name {friendly_name!r} is not a registered sensor", "unknown_device")
        return info


register(Zigbee2MqttDecoder())


@dataclass(frozen=True, slots=True)
class Z2mTopic:
    """What a topic under a zigbee2mqtt base topic carries: a device's ``state`` or
    ``availability`` (``name`` = its friendly name), a bridge's ``bridge_state`` (``name`` = the
    bridge's base topic, e.g. ``zigbee2mqtt/home-0001``), or ``other`` (bridge info, logging,
    commands…: not a report, ``name`` empty)."""

    kind: Literal["state", "availability", "bridge_state", "other"]
    name: str


def classify_topic(topic: str, base_topic: str) -> Z2mTopic:
    """Where ``topic`` stands under ``base_topic`` (see the module docstring). Raises
    :class:`DecodeError` ``bad_topic`` for a topic not under ``<base_topic>/`` or with an empty level."""
    prefix = base_topic + "/"
    if not topic.startswith(prefix) or len(topic) == len(prefix):
        raise DecodeError(f"topic {topic!r} is not under {prefix!r}", "bad_topic")
    levels = topic[len(prefix):].split("/")
    if "" in levels:
        raise DecodeError(f"topic {topic!r} has an empty level", "bad_topic")
    if len(levels) >= 2 and levels[-2] == "bridge" and levels[-1] == "state":
        return Z2mTopic("bridge_state", "/".join([base_topic, *levels[:-2]]))
    if _is_bridge_topic(levels) or levels[-1] in COMMAND_LEVELS or (
            len(levels) >= 2 and levels[-2] in COMMAND_LEVELS):
        return Z2mTopic("other", "")
    if levels[-1] == "availability" and len(levels) >= 2:
        return Z2mTopic("availability", "/".join(levels[:-1]))
    return Z2mTopic("state", "/".join(levels))


def last_seen(obj: dict, received_at: datetime, max_future_s: float) -> datetime:
    """``last_seen`` as UTC: ISO 8601 text with ``Z`` or an offset, or epoch milliseconds
    (number or digits); the reception time when absent. Errors ``bad_time``, ``future_time``
    (more than ``max_future_s`` after ``received_at``)."""
    value = obj.get("last_seen")
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return fields.timestamp(obj, "last_seen", received_at, max_future_s, naive_is_utc=False)
    try:
        t = _EPOCH + timedelta(milliseconds=value)
    except (OverflowError, ValueError):
        raise DecodeError(f"last_seen {value!r} is not epoch milliseconds", "bad_time") from None
    # Re-checked by the shared helper for the range and future-time rules.
    return fields.timestamp({"last_seen": t.isoformat()}, "last_seen", received_at, max_future_s,
                            naive_is_utc=False)


def _is_bridge_topic(levels: list[str]) -> bool:
    return any(level == "bridge" and i + 1 < len(levels) and levels[i + 1] in BRIDGE_TOPICS
               for i, level in enumerate(levels))


def availability_state(payload: bytes) -> bool:
    """An availability body, ``{"state":"online"|"offline"}`` or the legacy plain one → True when
    online. Errors ``not_utf8``, ``not_json``, ``not_object``, ``bad_state``."""
    body = payload.strip()
    if body in _AVAILABILITY_BODIES:
        return _AVAILABILITY_BODIES[body]
    obj = fields.load_json(payload)
    if not isinstance(obj, dict):
        raise DecodeError(f"availability: expected a JSON object or online/offline, got {type(obj).__name__}",
                          "not_object")
    state = obj.get("state")
    if state not in ("online", "offline"):
        raise DecodeError(f"availability state must be \"online\" or \"offline\", got {fields._short(state)}",
                          "bad_state")
    return state == "online"


def _value(obj: dict, info: SensorInfo) -> float | None:
    """The event value for the sensor's kind (see the module table); None when the message holds
    no state field at all."""
    names = KIND_FIELDS[info.kind]
    present = [n for n in names if obj.get(n) is not None]
    if not present:
        others = sorted(n for n in _STATE_FIELDS - set(names) if obj.get(n) is not None)
        if others:
            raise DecodeError(f"sensor {info.sensor_id} is registered as {info.kind} but the message reports "
                              f"{', '.join(others)}", "kind_mismatch")
        return None
    if info.kind is SensorKind.POWER:
        relay_on = None if obj.get("state") is None else boolean(obj, "state")
        if relay_on is False:
            return 0.0
        return fields.number(obj, "power", "bad_field", minimum=0.0)
    name = present[0]
    if name == "pressure_state":
        state = obj[name]
        if not isinstance(state, str) or state.strip().lower() not in PRESSURE_STATES:
            raise DecodeError(f"pressure_state must be one of {', '.join(PRESSURE_STATES)}, got "
                              f"{fields._short(state)}", "bad_state")
        return PRESSURE_STATES[state.strip().lower()]
    state = boolean(obj, name)
    if info.kind is SensorKind.CONTACT:
        state = not state  # zigbee2mqtt: contact true = magnet near = closed
    return 1.0 if state else 0.0


def boolean(obj: dict, name: str) -> bool:
    """``obj[name]`` as a boolean: JSON true/false, or the text true/false/ON/OFF in any case."""
    value = obj[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise DecodeError(f"{name} must be true/false or ON/OFF, got {fields._short(value)}", "bad_state")
