"""zigbee2mqtt heating devices of a town hall (radiator valves, heat/power meters, room and outdoor
sensors) → :class:`~vigie.records.HeatingReading`.

Source: zigbee-herdsman-converters (``src/lib/exposes.ts`` climate exposes, ``src/devices/danfoss.ts``
014G2461, ``tuya.ts`` TS0601_thermostat / TS0601_thermostat_3, ``lumi.ts`` SRTS-A01, ``bosch.ts``
BTH-RA, ``sonoff.ts`` TRVZB) and zigbee2mqtt 2.x, summarised in ``shared/reference/payload-formats.md``
§2. Topics, availability, bridge messages, ``last_seen`` formats, booleans and numbers are read as by
the home decoder (:mod:`vigie.ingest.decoders.zigbee2mqtt`, whose helpers this module uses): a
building's bridge runs with base topic ``<base>/<building prefix>`` (``zigbee2mqtt-heating/mairie``),
and the registry's ``friendly_name`` of a device is its topic after ``<base>/``
(``mairie/conseil/trv_1``).

Mapping of a state message (every field optional; the first present name wins):

================ ============================================================= ====================
HeatingReading    zigbee2mqtt field                                             rule
================ ============================================================= ====================
``temperature_c`` ``local_temperature`` (TRV), else ``temperature`` (sensors)    °C, −60…100
``setpoint_c``    ``occupied_heating_setpoint`` (ZCL TRVs: Danfoss, Aqara E1,     °C, 0…50
                  Bosch, Sonoff), else ``current_heating_setpoint`` (Tuya)
``valve_pct``     ``position`` (older Tuya: the valve's position), else           %, 0…100
                  ``pi_heating_demand`` (Danfoss, Bosch, Tuya ``_thermostat_3``)
``heating``       ``running_state``: ``heat`` → true; ``idle``, ``cool``,         any case
                  ``fan_only`` → false. Without it, ``system_mode`` ``off`` →
                  false (the valve is shut)
``window_open``   ``window_open`` (Aqara E1, Tuya: a detected open window),       boolean
                  else Danfoss ``window_open_internal``: ``open``,
                  ``external_open`` (or 3, 4) → true; ``closed``, ``hold`` (or
                  1, 2) → false; ``quarantine`` (0: detection suspended) → none
``occupied``      ``occupancy`` (motion/presence sensors), else ``presence``      boolean
``power_w``       ``power`` (radiator plug, heat meter)                           W ≥ 0
``energy_kwh``    ``energy`` (cumulative register)                                kWh ≥ 0
``battery_pct``   ``battery``                                                     %, 0…100
``battery_low``   ``battery_low`` (many Tuya TRVs report only this)               boolean
================ ============================================================= ====================

Not states, never read as one: ``window_detection`` (Aqara E1: JSON boolean; Tuya, Bosch:
``"ON"``/``"OFF"``) and Sonoff's ``open_window`` are the *feature* switches of open-window detection
(Bosch's BTH-RA says outright it detects nothing itself); Danfoss ``window_open_external`` is a
command input echoed back. Also ignored: ``system_mode`` apart from ``off``, ``voltage`` (mV on
battery devices, V on plugs), ``linkquality``, ``device``, ``update``, limits and calibration
settings (``valve_opening_degree``, ``min_heat_setpoint_limit``…).

The registry's kind is not enforced (a TRV may also report ``power``): what is reported is stored.
A message with none of the fields above (a linkquality-only update) gives ``[]``.

Availability (``<name>/availability``) and bridge state (``bridge/state``) bodies are checked as
the home decoder checks them, then ignored (``[]``): no heating measurement holds them, and the
silent-device check reads the last report's time. Other ``bridge/…`` topics and ``set``/``get``
commands give ``[]`` too.

Refusals (:class:`~vigie.ingest.decoders.DecodeError` kinds): ``not_utf8``, ``not_json``,
``not_object``, ``bad_topic``, ``unknown_device`` (friendly name not a registered heating device),
``bad_state`` (a boolean or enum of the wrong type or value), ``bad_field`` (a number of the wrong
type or range), ``bad_time``, ``future_time``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from vigie.ingest.decoders import DecodeError, fields, register
from vigie.ingest.decoders.zigbee2mqtt import availability_state, boolean, classify_topic, last_seen
from vigie.records import HeatingReading

if TYPE_CHECKING:  # the registry imports the decoders package: annotations only
    from vigie.heating_registry import HeatingDeviceInfo

#: ``running_state`` values (ZCL thermostat running state as zigbee2mqtt names it) → heating.
RUNNING_STATES = {"heat": True, "idle": False, "cool": False, "fan_only": False}
#: Danfoss ``window_open_internal`` (014G2461) → window open; older converters sent the number.
#: ``quarantine``: detection suspended, the window's state is unknown.
WINDOW_OPEN_INTERNAL: dict[str | int, bool | None] = {
    "quarantine": None, "closed": False, "hold": False, "open": True, "external_open": True,
    0: None, 1: False, 2: False, 3: True, 4: True,
}
TEMPERATURE_C = (-60.0, 100.0)
SETPOINT_C = (0.0, 50.0)


class HeatingDeviceLookup(Protocol):
    """``device_for(friendly_name)``: the registered heating device, or None when the name is
    unknown (``vigie.heating_registry.HeatingDirectory.by_friendly_name``; may raise
    ``RegistryUnavailable``)."""

    def __call__(self, friendly_name: str) -> "HeatingDeviceInfo | None": ...


class Zigbee2MqttHeatingDecoder:
    """Decoder ``zigbee2mqtt_heating``: one message → ``list[HeatingReading]`` (at most one).

    ``device_for``: friendly name → ``HeatingDeviceInfo`` (None: unknown); None makes the unbound
    decoder (the registered one), whose :meth:`decode` raises ``RuntimeError`` until :meth:`bind`.
    ``base_topic``: the prefix the ingestor subscribes under (``zigbee2mqtt-heating``).
    ``max_future_s``: a ``last_seen`` later than reception by more than this is refused.
    """

    name = "zigbee2mqtt_heating"
    yields = HeatingReading
    lookup = "heating_device"

    def __init__(self, device_for: HeatingDeviceLookup | None = None, base_topic: str = "zigbee2mqtt-heating",
                 max_future_s: float = 300.0) -> None:
        if not base_topic or base_topic.endswith("/") or any(c in base_topic for c in "+#"):
            raise ValueError(f"base_topic {base_topic!r}: expected a topic without wildcards or trailing '/'")
        self.device_for = device_for
        self.base_topic = base_topic
        self.max_future_s = max_future_s

    def bind(self, device_for: HeatingDeviceLookup, base_topic: str) -> "Zigbee2MqttHeatingDecoder":
        """This decoder for the registry's heating devices under ``base_topic``."""
        return Zigbee2MqttHeatingDecoder(device_for, base_topic, self.max_future_s)

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[HeatingReading]:
        if self.device_for is None:
            raise RuntimeError("the zigbee2mqtt_heating decoder needs a device lookup: use bind(device_for, "
                               "base_topic)")
        where = classify_topic(topic, self.base_topic)
        if where.kind in ("bridge_state", "availability"):
            availability_state(payload)  # a malformed body is still refused
            return []
        if where.kind == "other":
            return []
        info = self.device_for(where.name)
        if info is None:
            raise DecodeError(f"friendly name {where.name!r} is not a registered heating device", "unknown_device")
        obj = fields.load_json(payload)
        if not isinstance(obj, dict):
            raise DecodeError(f"expected a JSON object, got {type(obj).__name__}", "not_object")
        values = dict(
            temperature_c=_first_number(obj, ("local_temperature", "temperature"), *TEMPERATURE_C),
            setpoint_c=_first_number(obj, ("occupied_heating_setpoint", "current_heating_setpoint"), *SETPOINT_C),
            valve_pct=_first_number(obj, ("position", "pi_heating_demand"), 0.0, 100.0),
            heating=_heating(obj),
            window_open=_window_open(obj),
            occupied=_first_boolean(obj, ("occupancy", "presence")),
            power_w=fields.number(obj, "power", "bad_field", minimum=0.0),
            energy_kwh=fields.number(obj, "energy", "bad_field", minimum=0.0),
            battery_pct=fields.number(obj, "battery", "bad_field", minimum=0.0, maximum=100.0),
            battery_low=_first_boolean(obj, ("battery_low",)),
        )
        time = last_seen(obj, received_at, self.max_future_s)
        if all(v is None for v in values.values()):
            return []
        return [HeatingReading(device_id=info.device_id, time=time, source=self.name, **values)]


register(Zigbee2MqttHeatingDecoder())


def _first_number(obj: dict, names: tuple[str, ...], minimum: float, maximum: float | None) -> float | None:
    for name in names:
        value = fields.number(obj, name, "bad_field", minimum=minimum, maximum=maximum)
        if value is not None:
            return value
    return None


def _first_boolean(obj: dict, names: tuple[str, ...]) -> bool | None:
    for name in names:
        if obj.get(name) is not None:
            return boolean(obj, name)
    return None


def _enum_text(obj: dict, name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise DecodeError(f"{name} must be text, got {fields._short(value)}", "bad_state")
    return value.strip().lower()


def _heating(obj: dict) -> bool | None:
    if obj.get("running_state") is not None:
        state = _enum_text(obj, "running_state")
        if state not in RUNNING_STATES:
            raise DecodeError(f"running_state must be one of {', '.join(RUNNING_STATES)}, got "
                              f"{fields._short(obj['running_state'])}", "bad_state")
        return RUNNING_STATES[state]
    mode = obj.get("system_mode")  # read for "off" only: other modes say nothing of the valve
    if isinstance(mode, str) and mode.strip().lower() == "off":
        return False
    return None


def _window_open(obj: dict) -> bool | None:
    if obj.get("window_open") is not None:
        return boolean(obj, "window_open")
    value = obj.get("window_open_internal")
    if value is None:
        return None
    key: str | int | None = None
    if isinstance(value, str):
        text = value.strip().lower()
        key = int(text) if text.isdigit() else text
    elif isinstance(value, int) and not isinstance(value, bool):
        key = value
    if key not in WINDOW_OPEN_INTERNAL:
        raise DecodeError(f"window_open_internal must be one of quarantine, closed, hold, open, external_open "
                          f"(or 0-4), got {fields._short(value)}", "bad_state")
    return WINDOW_OPEN_INTERNAL[key]
