"""Payload decoders: turn one MQTT message into records — :class:`~vigie.records.MeterReading`
(water meters), :class:`~vigie.records.SensorEvent` (assisted-living home sensors) or
:class:`~vigie.records.HeatingReading` (town-hall heating devices).

Like Telegraf's parsers, each payload format lives in its own module and registers one decoder
object under a name; the ingestor's configuration pairs topic filters with those names
(``VIGIE_WATER_TOPICS``, e.g. ``wmbusmeters/#=wmbusmeters``; ``VIGIE_HOME_TOPICS``, e.g.
``zigbee2mqtt/#=zigbee2mqtt``; ``VIGIE_HEATING_TOPICS``; ``VIGIE_LORAWAN_TOPICS``, e.g.
``v3/+/devices/+/up=tts_v3``). Formats and field mappings are in ``ingest/decoders/README.md``.

A decoder is any object with

- ``name: str`` — the registry key;
- ``yields`` — the record type it makes, one of :data:`RECORD_TYPES`, or a tuple of them for a
  decoder whose records' type depends on the device (a LoRaWAN network server carries water
  meters → ``MeterReading`` and heating devices → ``HeatingReading`` in one format). Optional: a
  decoder without it yields ``MeterReading``; :func:`record_types` reads it. ``SensorEvent``
  cannot be mixed with another type. The ingestor stores each record by its type
  (``ingest/README.md``), whatever route it came by;
- ``decode(topic: str, payload: bytes, received_at: datetime)`` — ``received_at`` is the
  timezone-aware UTC time the message reached the ingestor (used when the payload carries no time
  of its own, and to refuse times in the future). It returns a list of records of its ``yields``
  types; a ``SensorEvent`` decoder may instead return one
  :class:`~vigie.ingest.decoders.zigbee2mqtt.DeviceAvailability`. An empty list means a status
  message, not a reading (counted, neither stored nor dead-lettered). Any payload that cannot be
  read raises :class:`DecodeError`.
- a decoder that finds its devices in the registry itself — required of ``SensorEvent`` and
  ``HeatingReading`` decoders, whose records name registry devices — also has ``lookup``, the
  name of the registry lookup it needs (:data:`LOOKUPS`; a ``SensorEvent`` decoder without it
  means ``home_sensor``), and ``bind(lookup, base_topic) -> decoder``: the same format bound to
  that lookup and, for a lookup keyed by friendly name, to the ``<base>`` of the ``<base>/#``
  filter it serves (``None`` for the others); the registered object is unbound (its ``decode``
  raises ``RuntimeError``). The lookup may raise ``vigie.sensors.RegistryUnavailable`` (the
  ingestor then retries the message).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vigie.records import HeatingReading, MeterReading, SensorEvent

#: The record types a decoder may yield.
RECORD_TYPES = (MeterReading, SensorEvent, HeatingReading)
#: The registry lookups a decoder may be bound to, by name → what they are keyed by:
#: ``home_sensor`` (friendly name → ``SensorInfo``, ``vigie.sensors.SensorDirectory``),
#: ``heating_device`` (friendly name → ``HeatingDeviceInfo``, ``HeatingDirectory.by_friendly_name``),
#: ``lorawan_device`` (DevEUI → ``LorawanDeviceInfo``, ``HeatingDirectory.by_dev_eui``).
LOOKUPS = {"home_sensor": "friendly_name", "heating_device": "friendly_name", "lorawan_device": "dev_eui"}


class DecodeError(ValueError):
    """A payload that cannot be turned into readings.

    ``str(error)`` is the human reason (ids and offending values, never the whole payload);
    ``kind`` is a short stable code for counting (``not_json``, ``bad_index``, ``future_time``…).
    """

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.kind = kind


class Decoder(Protocol):
    name: str
    yields: type | tuple[type, ...]

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list | object: ...


def record_types(decoder: Decoder) -> tuple[type, ...]:
    """The record types ``decoder`` yields (``(MeterReading,)`` when it does not say)."""
    yields = getattr(decoder, "yields", MeterReading)
    return tuple(yields) if isinstance(yields, tuple) else (yields,)


def lookup_of(decoder: Decoder) -> str | None:
    """The registry lookup ``decoder`` binds to (a key of :data:`LOOKUPS`), None when it binds to
    none (it is used as registered)."""
    name = getattr(decoder, "lookup", None)
    if name is None and SensorEvent in record_types(decoder):
        return "home_sensor"
    return name


_REGISTRY: dict[str, Decoder] = {}


def register(decoder: Decoder) -> Decoder:
    """Add ``decoder`` under ``decoder.name`` (replacing any decoder of that name); returns it."""
    if not getattr(decoder, "name", None):
        raise ValueError("a decoder needs a non-empty name")
    types = record_types(decoder)
    if not types or any(t not in RECORD_TYPES for t in types):
        raise ValueError(f"decoder {decoder.name}: yields must be one of "
                         f"{', '.join(t.__name__ for t in RECORD_TYPES)}, or a tuple of them")
    if SensorEvent in types and len(types) > 1:
        raise ValueError(f"decoder {decoder.name}: a SensorEvent decoder yields nothing else")
    lookup = lookup_of(decoder)
    if lookup is not None and lookup not in LOOKUPS:
        raise ValueError(f"decoder {decoder.name}: lookup must be one of {', '.join(LOOKUPS)}")
    if lookup is None and (SensorEvent in types or HeatingReading in types):
        raise ValueError(f"decoder {decoder.name}: a {'SensorEvent' if SensorEvent in types else 'HeatingReading'} "
                         f"decoder names its registry lookup (lookup = one of {', '.join(LOOKUPS)})")
    if lookup is not None and not callable(getattr(decoder, "bind", None)):
        raise ValueError(f"decoder {decoder.name}: a decoder with a registry lookup needs bind(lookup, base_topic)")
    _REGISTRY[decoder.name] = decoder
    return decoder


def get_decoder(name: str) -> Decoder:
    """The decoder registered as ``name``; :class:`KeyError` naming the known decoders otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no decoder named {name!r}; known decoders: {', '.join(decoder_names())}") from None


def decoder_names() -> list[str]:
    """Registered decoder names, sorted."""
    return sorted(_REGISTRY)


# The built-in formats register themselves on import (after the names above exist).
from vigie.ingest.decoders import (  # noqa: E402,F401
    chirpstack_v4, native, tts_v3, wmbusmeters, zigbee2mqtt, zigbee2mqtt_heating)
